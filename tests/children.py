"""Host credentials: a function run in a forked child with others (a real process of another
uid), and the capabilities of this one."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterable


def as_ids(
    uid: int, gid: int, groups: Iterable[int], act: Callable[..., object], *args: object
) -> object:
    """`act(*args)` in a forked child with these ids and groups, umask 0; its JSON result.

    The child has only what the parent imported before: nothing it imports later
    may need a file that the other uid cannot read.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.setgroups(sorted(set(groups)))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            os.umask(0)
            os.write(w, json.dumps(act(*args)).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed"
    return json.loads(data)


def capabilities() -> int:
    """This process's effective capabilities: bit N set for capability N (CAP_*)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("CapEff:"))
    return int(line.split()[1], 16)
