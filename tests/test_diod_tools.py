"""diod's own C clients (libnpclient: diodcat, diodls) against ninep-server: interoperation
with a client this project did not write."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TOOLS = [shutil.which(t) or f"/usr/sbin/{t}" for t in ("diodcat", "diodls")]
pytestmark = pytest.mark.skipif(
    not all(Path(t).exists() for t in TOOLS), reason="diod's tools (Debian package diod)"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`ninep-server` on loopback TCP exporting a directory as C; (HOST:PORT, the export)."""
    export = tmp_path / "c"
    export.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ninep", "--allow-root", "--export", f"C={export}", "-v",
         "--listen", "tcp:127.0.0.1:0"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    text = ""
    while not (found := re.search(r"listening on tcp:(\S+)", text)):
        line = proc.stderr.readline().decode()
        assert line, f"the server did not start:\n{text}"
        text += line
    try:
        yield found.group(1), export
    finally:
        proc.terminate()
        proc.wait(60)


def test_diodcat_reads_a_file(server: tuple[str, Path]) -> None:
    address, export = server
    data = bytes(range(256)) * 4096  # 1 MiB, several messages at diodcat's msize
    (export / "data.bin").write_bytes(data)
    out = subprocess.run(
        ["diodcat", "-s", address, "-a", "C", "-t", "30", "data.bin"], capture_output=True
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == data


def test_diodls_lists_with_attributes(server: tuple[str, Path]) -> None:
    address, export = server
    names = [f"entry-{i:03d}" for i in range(200)]
    for name in names:
        (export / name).write_text(name)
    (export / "sub").mkdir()
    out = subprocess.run(
        ["diodls", "-l", "-s", address, "-a", "C", "-t", "30"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    listed = {line.split()[-1] for line in lines}
    assert listed >= {*names, "sub"}
    sizes = {line.split()[-1]: line for line in lines}
    assert sizes["sub"].startswith("d") and sizes["entry-007"].startswith("-")
