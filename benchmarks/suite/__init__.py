"""`ninep-bench`: workloads over targets (the native disk, drvfs, sshfs, bindfs, diod, ...)
side by side in one run, reported as a Markdown table, results.json and PNG charts.

| module | what |
|---|---|
| `corpus.py` | the sizes; the inputs made once per run (a copy of Python's standard library |
|  | as a git repository, its tarball, files of random bytes) |
| `workloads.py` | each workload: seed, prepare, run (timed), verify, clean up |
| `targets.py` | each target: what it needs, how it starts, mounts and stops |
| `procs.py` | child processes: servers, FUSE mounts, unmounting, dropping caches |
| `guest.py` | the opt-in `9p-kernel` target: the workloads in a QEMU guest (tests/guest) |
| `runner.py` | the loop over targets, workloads and runs (cold or warm), with a progress bar |
| `results.py` | the results, results.json, the Markdown tables, `--compare` |
| `charts.py` | the PNG charts (matplotlib) |
| `cli.py` | the command line |
"""
