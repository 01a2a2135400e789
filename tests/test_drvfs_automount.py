"""`drvfs automount` against a real server started from a config file: every export it lists
mounted under a temporary root with drvfs.conf's options (checked through the mounts), once,
undone by --unmount; names that are not a directory name refused; fstab's lines mounted in a
private mount namespace; a server that starts late waited for."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drvfs import mounts

from .drvfs_harness import NEEDS_FUSE, short_dir
from .notified import REPO, TIMEOUT, notified_server, three_exports

pytestmark = NEEDS_FUSE

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def drvfs(*args: str) -> subprocess.CompletedProcess[str]:
    """`drvfs ARGS`, run to its end."""
    return subprocess.run([sys.executable, "-m", "drvfs", *args], capture_output=True,
                          text=True, env=ENV, cwd=REPO, timeout=TIMEOUT)  # fmt: skip


def drvfs_mounts_under(root: Path) -> list[mounts.Mount]:
    return [m for m in mounts.table() if m.export is not None and m.mountpoint.startswith(
        f"{mounts.real(str(root))}/")]  # fmt: skip


@pytest.fixture
def place() -> Iterator[Path]:
    """A short directory: the server's exports c, d, e and its config, drvfs.conf, and the
    root the mounts go under (whatever is left mounted there is unmounted at the end)."""
    with short_dir() as path:
        three_exports(path)
        (path / "drvfs.conf").write_text(f"""\
# as /etc/wsl.conf
[automount]
enabled = true
root = {path}/mnt/
options = "uid=1234,gid=1234,umask=022,fmask=111"
mountFsTab = false
server = unix:{path}/9p.sock

[export E]
options = "case=force"
""")
        try:
            yield path
        finally:
            drvfs("automount", "--config", str(path / "drvfs.conf"), "--unmount")
            for m in drvfs_mounts_under(path):
                subprocess.run(["umount", "-l", m.mountpoint], check=False)


def _serving(place: Path) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return notified_server(place, ["--config", str(place / "server.toml")])


def test_exports_are_listed_without_a_host_path(place: Path) -> None:
    with _serving(place):
        out = drvfs("exports", f"unix:{place}/9p.sock")
    assert out.returncode == 0, out.stderr
    assert [line.split()[:3] for line in out.stdout.splitlines()[1:]] == [
        ["C", "rw", "off"], ["D", "ro", "off"], ["E", "rw", "on"]]  # fmt: skip
    assert str(place) not in out.stdout


def test_automount_mounts_each_export_with_its_options_once(place: Path) -> None:
    conf, mnt = str(place / "drvfs.conf"), place / "mnt"
    with _serving(place):
        first = drvfs("automount", "--config", conf)
        assert first.returncode == 0, first.stderr
        made = drvfs_mounts_under(mnt)
        assert [(m.export, Path(m.mountpoint).name) for m in made] == [
            ("C", "c"), ("D", "d"), ("E", "e")]  # fmt: skip
        # the options, through the mounts: owner and masks, case, read-only, metadata
        (mnt / "c" / "Foo.txt").write_text("x")
        st = os.stat(mnt / "c" / "FOO.TXT")  # case=off: any case finds it
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 1234, 0o644)
        with pytest.raises(OSError) as e:
            (mnt / "d" / "new").write_text("x")
        assert e.value.errno == errno.EROFS
        (mnt / "e" / "sub").mkdir()
        (mnt / "e" / "sub" / "Foo").write_text("x")
        assert not (mnt / "e" / "sub" / "FOO").exists()  # [export E]: case=force
        os.chmod(mnt / "e" / "sub" / "Foo", 0o640)
        assert os.stat(mnt / "e" / "sub" / "Foo").st_mode & 0o777 == 0o640  # metadata kept
        again = drvfs("automount", "--config", conf)
        assert again.returncode == 0, again.stderr
        assert drvfs_mounts_under(mnt) == made
        assert again.stderr.count("already mounted") == 3
        off = drvfs("automount", "--config", conf, "--unmount")
        assert off.returncode == 0, off.stderr
        assert drvfs_mounts_under(mnt) == []


def test_names_that_are_not_a_directory_name_are_refused(place: Path) -> None:
    odd = place / "odd.toml"
    odd.write_text(f"""\
listen = ["unix:{place}/9p.sock"]
[export."a/b"]
path = "{place}/c"
[export.".."]
path = "{place}/c"
[export.ok]
path = "{place}/c"
""")
    with notified_server(place, ["--config", str(odd)]):
        out = drvfs("automount", "--config", str(place / "drvfs.conf"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert [line.split()[-2:] for line in out.stdout.splitlines()] == [
        ["ok", f"{place}/mnt/ok"]]  # fmt: skip
    assert "refusing export 'a/b'" in out.stderr and "refusing export '..'" in out.stderr
    assert not (place / "mnt").exists()  # a dry run makes nothing


def test_mountfstab_mounts_fstab_lines_in_a_private_namespace(place: Path) -> None:
    conf, target, fstab = place / "fstab.conf", place / "t", place / "fstab"
    conf.write_text("[automount]\nenabled = false\nmountFsTab = true\n")
    target.mkdir()
    fstab.write_text(f"# a test fstab\nscratch {target} tmpfs size=1m 0 0\n")
    script = '"$@" && "$@" && grep -c " $0 " /proc/self/mountinfo'  # twice: mounted once
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(target),
         sys.executable, "-m", "drvfs", "automount", "--config", str(conf), "--fstab", str(fstab)],
        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=TIMEOUT,
    )  # fmt: skip
    assert (out.returncode, out.stdout) == (0, "1\n"), out.stderr
    assert mounts.mounted_on(str(target)) is None  # the namespace's, not ours


def test_a_server_that_starts_late_is_waited_for(place: Path) -> None:
    conf = str(place / "drvfs.conf")
    waiting = subprocess.Popen([sys.executable, "-m", "drvfs", "automount", "--config", conf,
                                "--wait", str(TIMEOUT)], stderr=subprocess.PIPE, text=True,
                               env=ENV, cwd=REPO)  # fmt: skip
    try:
        assert waiting.stderr is not None
        line = waiting.stderr.readline()  # the first attempt failed: no server yet
        assert "not reachable yet" in line and "attempt 1," in line, line
        with _serving(place):
            assert waiting.wait(TIMEOUT) == 0, waiting.stderr.read()
            assert [m.export for m in drvfs_mounts_under(place / "mnt")] == ["C", "D", "E"]
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(TIMEOUT)
