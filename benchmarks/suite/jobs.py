"""`--jobs N`: N copies of a workload at once, each in a process of its own (a fork: no
shared interpreter lock) and a directory of its own (job0, job1, ... of the target's)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .corpus import Corpus
from .workloads import Place, Workload, WorkloadError


def one_job(workload: Workload, corpus: Corpus, place: Place) -> dict[str, Any]:
    """Run and check one copy: its start and end (the system's monotonic clock, the same
    in every process), its own time (fio's, or the wall) and work; or its error."""
    try:
        start = time.perf_counter()
        outcome = workload.run(corpus, place)
        end = time.perf_counter()
        workload.verify(corpus, place, outcome)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"start": start, "end": end, "seconds": outcome.seconds or end - start,
            "work": outcome.work}  # fmt: skip


def run_jobs(
    workload: Workload, corpus: Corpus, place: Place, jobs: int
) -> tuple[float, list[float], float | None]:
    """Run `jobs` copies at once: the wall time from the first start to the last end, each
    job's time, and the work of all (None for a workload without a unit). A failed copy
    fails the run (WorkloadError)."""
    children = []
    for i in range(jobs):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            os.close(read)
            try:
                result = one_job(workload, corpus, Place(place.dir / f"job{i}", watched=None))
                os.write(write, json.dumps(result).encode())
            finally:
                os._exit(0)
        os.close(write)
        children.append((pid, read))
    results: list[dict[str, Any]] = []
    for pid, read in children:
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        results.append(json.loads(data) if data else {"error": "the job died"})
    if errors := [r["error"] for r in results if "error" in r]:
        raise WorkloadError(f"{len(errors)} of {jobs} jobs failed: {errors[0]}")
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    works = [r["work"] for r in results]
    work = sum(works) if None not in works else None
    return wall, [r["seconds"] for r in results], work
