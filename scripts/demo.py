"""`make demo`: export ./demo as "C" with ninep-server and use it over 9P with our client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import trio

from ninep.client import Fid, connect
from ninep.constants import OpenFlag

DEMO = Path(__file__).resolve().parent.parent / "demo"


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    cmd = [sys.executable, "-m", "ninep", "--export", f"C={DEMO}", "-v",
           "--listen", "tcp:127.0.0.1:0"]  # fmt: skip
    print("$ ninep-server", " ".join(cmd[3:]).replace(str(DEMO), "./demo"))
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    seen = b""
    while not (found := re.search(rb"listening on (\S+)", seen)):
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"the server did not start:\n{seen.decode()}")
        seen += line
    return proc, found.group(1).decode()


async def tour(address: str) -> None:
    async with connect(address) as client:
        root: Fid = await client.attach("C")
        print(f"\nattached to export C at {address}; msize {client.msize}")
        print("entries:", sorted(await root.listdir()))
        await root.write_file("hello.txt", b"hello over 9P2000.L\n")
        print("wrote hello.txt; read back:", (await root.read_file("hello.txt")).decode().strip())
        notes = await root.walk_path("notes")
        attr = await notes.getattr()
        print(f"notes/: mode {attr.mode:o}, inode {attr.qid.path}")
        f = await notes.clone()
        await f.create("todo.txt", OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.TRUNC, 0o644)
        await f.write(0, b"- mount at /mnt/c with drvfs\n")
        await f.clunk()
        await notes.renameat("todo.txt", notes, "TODO.txt")
        print("notes/ now holds:", sorted(await notes.listdir()))
        await notes.clunk()
        await root.clunk()


def main() -> int:
    (DEMO / "notes").mkdir(parents=True, exist_ok=True)
    (DEMO / "readme.txt").write_text("This directory is exported by `make demo`.\n")
    proc, address = start_server()
    try:
        trio.run(tour, address)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait()
    print(f"\nthe server stopped on SIGTERM with status {code}")
    print(
        "on the host, ./demo now holds:",
        sorted(os.listdir(DEMO)),
        sorted(os.listdir(DEMO / "notes")),
    )
    print(
        "from a Linux VM: mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,aname=C HOST /mnt/c"
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
