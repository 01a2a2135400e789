"""`make demo` does what the README says: drive C mounted (here on a mount point of the test's),
kept mounted until Enter or Ctrl-C, then unmounted, and the server stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, PYTHON, REPO, TIMEOUT, is_mounted

pytestmark = NEEDS_FUSE

PROMPT = b"Press Enter (or Ctrl-C) to unmount it and stop the server."


def _read_until(proc: subprocess.Popen[bytes], marker: bytes | None) -> bytes:
    """The demo's output up to `marker`, or to its end if None (each read waits TIMEOUT at
    most: a hang guard)."""
    assert proc.stdout is not None
    seen = b""
    while marker is None or marker not in seen:
        assert select.select([proc.stdout], [], [], TIMEOUT)[0], seen.decode()
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            assert marker is None, f"the demo ended early:\n{seen.decode()}"
            break
        seen += chunk
    return seen


@pytest.mark.parametrize("how", ["enter", "ctrl-c"])
def test_demo_keeps_the_drive_mounted_until_the_user_is_done(tmp_path: Path, how: str) -> None:
    mnt = tmp_path / "mnt"
    env = {
        **os.environ,
        "DEMO_DIR": str(tmp_path / "demo"),
        "DEMO_MOUNTPOINT": str(mnt),
        "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}",
    }  # as make demo sets it
    proc = subprocess.Popen([PYTHON, "scripts/demo.py"], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    assert proc.stdin is not None
    try:
        shown = _read_until(proc, PROMPT)
        assert f"# {mnt} stays mounted".encode() in shown
        assert is_mounted(mnt)
        assert (mnt / "README.TXT").read_text() == "Drive C, exported by `make demo`.\n"
        if how == "enter":
            proc.stdin.write(b"\n")
            proc.stdin.flush()
        else:
            proc.send_signal(signal.SIGINT)
        rest = _read_until(proc, None)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        with contextlib.suppress(ProcessLookupError):  # its server and drvfs, if left
            os.killpg(proc.pid, signal.SIGKILL)
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert b"stopped on SIGTERM with status 0" in rest
    assert not is_mounted(mnt)
