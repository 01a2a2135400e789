"""`make install` into a staging tree (DESTDIR), then that tree used as installed: bound over
/usr/local and laid over /sbin in a mount namespace of the test's own, so that nothing of the
machine's changes. The commands run from PATH, mount(8) finds both helpers (`mount -t drvfs`,
`mount -t fuse.drvfs`) and mounts the README's fstab line with `mount -a -T`, all from the
installed copy; `make uninstall` removes it all."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drvfs.cli import HELPERS
from ninep.version import package_version

from .drvfs_harness import NEEDS_FUSE, ServerProcess, in_mount_namespace, is_mounted, server_alone

pytestmark = [
    NEEDS_FUSE,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
]

REPO = Path(__file__).resolve().parent.parent
LIBDIR = Path("/usr/local/lib/ninep-volfs")  # the Makefile's default (PREFIX=/usr/local)
COMMANDS = ("ninep-server", "drvfs", "ninep-bench")
INSTALL_TIMEOUT = 900  # seconds: a fresh clone's make setup may run first; a hang guard
#: Nothing of this checkout's Python environment (make install makes its own)...
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
#: ... and in the namespace, the commands found where a user's shell finds them.
INSTALLED_ENV = {**ENV, "PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT, env=ENV)  # fmt: skip


@pytest.fixture(scope="module")
def destdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("destdir")
    done = _make("install", f"DESTDIR={dest}")
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with server_alone(tmp_path / "export") as server:
        (server.export / "seen").write_text("from the installed copy")
        yield server


#: In the namespace: the staged tree $1 bound over /usr/local, its sbin laid over /sbin.
_INSTALLED = """
mount --bind "$1/usr/local" /usr/local
mount -t overlay overlay -o lowerdir="$1/sbin":/sbin /sbin
shift
"""


def _installed(dest: Path, script: str, *args: str) -> str:
    done = in_mount_namespace(_INSTALLED + script, str(dest), *args, env=INSTALLED_ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tree_installed(destdir: Path) -> None:
    """Links into BINDIR and SBINDIR to an environment that names its final place only, and
    holds its own copy of the project (no link back to this checkout), and the man pages."""
    root = destdir / "usr/local"
    for name in COMMANDS:
        assert os.readlink(root / "bin" / name) == str(LIBDIR / "bin" / name)
    for name in HELPERS:
        assert os.readlink(destdir / "sbin" / name) == str(LIBDIR / "bin/mount.drvfs")
    staged = destdir / LIBDIR.relative_to("/")
    for path in [*(staged / "bin").iterdir(), staged / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            assert str(destdir).encode() not in path.read_bytes(), path
    assert (staged / "bin/drvfs").read_text().startswith(f"#!{LIBDIR}/bin/python")
    site = next(staged.glob("lib/python3*/site-packages"))
    assert (site / "drvfs/cli.py").is_file()
    for pth in site.glob("*.pth"):
        assert str(REPO) not in pth.read_text(), pth
    compiled = next((site / "drvfs/__pycache__").glob("cli.*.pyc")).read_bytes()
    assert str(LIBDIR).encode() in compiled and str(destdir).encode() not in compiled
    pages = {p.relative_to(root / "share/man").as_posix() for p in root.glob("share/man/*/*")}
    assert pages == {"man8/ninep-server.8", "man8/drvfs.8", "man1/ninep-bench.1"} | {
        f"man8/{name}.8" for name in HELPERS
    }


def test_the_installed_commands_on_path(destdir: Path) -> None:
    out = _installed(destdir, """
for c in ninep-server drvfs ninep-bench /sbin/mount.drvfs /sbin/mount.fuse.drvfs; do
    "$c" --version | head -n 1
done
for c in ninep-server drvfs ninep-bench; do command -v "$c"; done
man -w drvfs mount.fuse.drvfs ninep-server ninep-bench
/usr/local/lib/ninep-volfs/bin/python -c 'import pyfuse3
print(pyfuse3.__file__.startswith("/usr/local/lib/ninep-volfs/"), pyfuse3.LOCKS_SUPPORTED)'
""")  # fmt: skip
    version = f"{package_version()} (ninep-volfs)"
    assert out.splitlines() == [
        *(f"{name} {version}" for name in (*COMMANDS, *HELPERS)),
        *(f"/usr/local/bin/{name}" for name in COMMANDS),
        "/usr/local/share/man/man8/drvfs.8",
        "/usr/local/share/man/man8/mount.fuse.drvfs.8",
        "/usr/local/share/man/man8/ninep-server.8",
        "/usr/local/share/man/man1/ninep-bench.1",
        "True True",  # the patched pyfuse3, in the installed environment
    ]


#: Mount $2 on $1 by each type, then by fstab file $3 (mount -a -T); each time print the type
#: /proc/mounts shows, the file `seen`, and the program serving the mount; then unmount.
_MOUNTS = """
show() {
    awk -v m="$1" '$2 == m { print $3 }' /proc/self/mounts
    cat "$1/seen"; echo
    for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < "$f" 2>/dev/null; echo; done |
        awk -v m="$1" 'index($0, "-m drvfs mount ") && index($0, m) && !/awk/ { print $1 }'
    umount "$1"
}
for type in drvfs fuse.drvfs; do
    mount -t "$type" C: "$1" -o "server=$2"
    show "$1"
done
mount -a -T "$3"
show "$1"
"""


def _readme_fstab_line() -> str:
    """The README's fstab line for /mnt/c."""
    text = (REPO / "README.md").read_text()
    found = re.findall(r"^C:\s+/mnt/c\s+drvfs\s+\S+\s+0 0$", text, re.MULTILINE)
    assert len(found) == 1, found
    return str(found[0])


def test_mount_t_and_fstab_through_the_installed_helpers(
    destdir: Path, server: ServerProcess, tmp_path: Path
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    line = _readme_fstab_line()
    assert "_netdev" in line and "nofail" in line
    line = line.replace("/mnt/c", str(mnt)).replace("tcp:127.0.0.1:5640", server.address)
    options = line.split()[3] + ",x-systemd.automount"  # the README's other choice
    fstab = tmp_path / "fstab"
    fstab.write_text(" ".join([*line.split()[:3], options, "0 0"]) + "\n")
    out = _installed(destdir, _MOUNTS, str(mnt), server.address, str(fstab))
    served = ["fuse.drvfs", "from the installed copy", f"{LIBDIR}/bin/python3"]
    assert out.splitlines() == served * 3
    assert not is_mounted(mnt)
    assert not any("unknown attach option" in entry for entry in server.log)


def test_uninstall_removes_all_it_installed(destdir: Path) -> None:
    """(Last in this file: it takes the installed tree away.)"""
    done = _make("uninstall", f"DESTDIR={destdir}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p for p in destdir.rglob("*") if not p.is_dir()] == []
    again = _make("uninstall", f"DESTDIR={destdir}")
    assert again.returncode == 0 and "nothing installed" in again.stdout
