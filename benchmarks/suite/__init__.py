"""`ninep-bench`: workloads over targets (the native disk, drvfs, sshfs, bindfs, diod, ...)
side by side in one run, reported as Markdown tables, results.json, results.csv and PNG
charts. docs/benchmarks.md has the method.

| module | what |
|---|---|
| `corpus.py` | the sizes; the inputs made once per run (a copy of Python's standard library |
|  | as a git repository, its tarball, files of random bytes) |
| `workloads.py` | each workload: seed, prepare, run (timed), verify, clean up; a user's own |
| `opcost.py` | the `ops` workload's measurement: wall p50/p99, CPU per process, 9P requests |
| `fusetrace.py` | the FUSE requests the kernel sends a mount (its tracepoint, tracefs) |
| `targets.py` | each target: what it needs, how it starts, mounts and stops |
| `procs.py` | child processes: servers, FUSE mounts, unmounting, dropping caches |
| `guest.py` | the opt-in `9p-kernel` target: the workloads in a QEMU guest (tests/guest) |
| `runner.py` | the loop over targets, workloads and runs (cold or warm, until stable), with a |
|  | progress bar |
| `jobs.py` | `--jobs N`: N copies of a workload at once, in forked processes |
| `stats.py` | median, MAD, the median's confidence interval, outliers; a change's verdict |
| `results.py` | the results and their statistics, results.json |
| `latency.py` | the per-operation figures of a report (fio's percentiles, the `ops` workload's) |
| `tables.py` | the Markdown tables |
| `compare.py` | the change of every figure between two runs, with its uncertainty |
| `csvout.py` | results.csv |
| `charts.py` | the PNG charts (matplotlib) |
| `cli.py` | the command line |
"""
