"""`make demo`: export ./demo as drive C with ninep-server, mount it at /mnt/c with drvfs, show
a few things, and keep it mounted until Enter or Ctrl-C (or the end of stdin); then unmount it
and stop the server. DEMO_DIR and DEMO_MOUNTPOINT move ./demo and /mnt/c."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

DEMO = Path(os.environ.get("DEMO_DIR", Path(__file__).resolve().parent.parent / "demo"))
MOUNTPOINT = Path(os.environ.get("DEMO_MOUNTPOINT", "/mnt/c"))
OPTIONS = "metadata,case=off"


def show(*cmd: str, check: bool = True) -> str:
    """Run a command the way a user would type it, and print what it prints."""
    print("$", shlex.join(cmd).replace(str(DEMO), "./demo"), flush=True)  # before it runs
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout + out.stderr).rstrip()
    if text:
        print(text.replace(str(DEMO), "./demo"))
    if check and out.returncode != 0:
        raise SystemExit(f"demo: {cmd[0]} failed with status {out.returncode}")
    return out.stdout


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    cmd = [sys.executable, "-m", "ninep", "--export", f"C={DEMO}", "-v",
           "--listen", "tcp:127.0.0.1:0", "--allow-root"]  # fmt: skip
    print("# the demo serves as root on purpose (--allow-root); a real setup serves as an")
    print("# ordinary user: ninep-server --user NAME ... (docs/security.md)")
    print("$ ninep-server", shlex.join(cmd[3:]).replace(str(DEMO), "./demo"), "&")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    seen = b""
    while not (found := re.search(rb"listening on (\S+)", seen)):
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"demo: the server did not start:\n{seen.decode()}")
        seen += line
    return proc, found.group(1).decode()


def tour() -> None:
    m = str(MOUNTPOINT)
    print("\n# names keep their case and are found in any case, as on a Windows drive")
    show("ls", "-l", m)
    show("cat", f"{m}/README.TXT")
    print("\n# with the metadata option, chmod keeps POSIX modes in extended attributes;")
    print("# the host file's own mode does not change")
    show("touch", f"{m}/script.sh")
    show("chmod", "750", f"{m}/script.sh")
    show("stat", "-c", "%A %n", f"{m}/script.sh")
    show("stat", "-c", "%A %n (on the host)", f"{DEMO}/script.sh")
    print("\n# a symlink is a regular file on the host, holding its target")
    show("ln", "-sf", "readme.txt", f"{m}/latest")
    show("readlink", f"{m}/latest")
    show("cat", f"{DEMO}/latest")
    print()


def wait_for_the_user() -> None:
    """Keep the mount until Enter, Ctrl-C or the end of stdin (a Ctrl-C as soon as the
    prompt is out, before the read begins, counts too)."""
    try:
        print(f"# {MOUNTPOINT} stays mounted: look around, in another shell too.")
        print("# Press Enter (or Ctrl-C) to unmount it and stop the server.", flush=True)
        sys.stdin.readline()
    except KeyboardInterrupt:
        print()


def main() -> int:
    # Ctrl-C ends the wait, also where the demo inherited SIGINT ignored (started as a
    # background job by a shell without job control, as CI scripts run it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    DEMO.mkdir(exist_ok=True)
    (DEMO / "readme.txt").write_text("Drive C, exported by `make demo`.\n")
    MOUNTPOINT.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(MOUNTPOINT):
        show("drvfs", "umount", str(MOUNTPOINT), check=False)
    proc, address = start_server()
    try:
        show("drvfs", "mount", "--server", address, "-o", OPTIONS, "C:", str(MOUNTPOINT))
        try:
            tour()
            wait_for_the_user()
        finally:
            print("# to unmount:")
            show("drvfs", "umount", str(MOUNTPOINT))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait()
    print(f"the server stopped on SIGTERM with status {code}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
