"""Metadata on and off seen through a drvfs mount, as WSL users see them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .drvfs_harness import NEEDS_FUSE, drvfs_mount

pytestmark = NEEDS_FUSE


def test_metadata_keeps_modes_owners_and_special_files_in_xattrs(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "metadata") as (mnt, server, _):
        script = mnt / "script.sh"
        script.write_text("echo hi\n")
        os.chmod(script, 0o750)
        os.chown(script, 1234, 5678)
        st = os.stat(script)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1234, 5678)
        host = server.export / "script.sh"
        host_st = os.stat(host)
        assert (host_st.st_uid, stat.S_IMODE(host_st.st_mode)) != (1234, 0o750)
        mode = int.from_bytes(os.getxattr(host, "user.virtfs.mode"), "little")
        assert mode == stat.S_IFREG | 0o750
        assert not [n for n in os.listxattr(script) if n.startswith("user.virtfs.")]

        os.symlink("script.sh", mnt / "latest")
        assert os.readlink(mnt / "latest") == "script.sh"
        assert (mnt / "latest").read_text() == "echo hi\n"
        assert not (server.export / "latest").is_symlink()
        assert (server.export / "latest").read_text() == "script.sh"

        os.mkfifo(mnt / "pipe")
        os.mknod(mnt / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        assert stat.S_ISFIFO(os.lstat(mnt / "pipe").st_mode)
        dev = os.lstat(mnt / "null")
        assert stat.S_ISCHR(dev.st_mode) and (os.major(dev.st_rdev), os.minor(dev.st_rdev)) == (
            1,
            3,
        )
        for name in ("pipe", "null"):
            on_host = os.lstat(server.export / name)
            assert stat.S_ISREG(on_host.st_mode) and on_host.st_size == 0


def test_without_metadata_the_wsl_options_make_owner_and_modes(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "uid=1000,gid=1001,umask=022,fmask=111") as (mnt, server, _):
        (mnt / "f").write_text("x")
        (mnt / "d").mkdir()
        f, d = os.stat(mnt / "f"), os.stat(mnt / "d")
        assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1000, 1001, 0o644)
        assert (d.st_uid, d.st_gid, stat.S_IMODE(d.st_mode)) == (1000, 1001, 0o755)
        os.chmod(mnt / "f", 0o444)  # no write bit left: the host file becomes read-only
        assert not os.stat(server.export / "f").st_mode & 0o222
        os.chmod(mnt / "f", 0o644)
        assert os.stat(server.export / "f").st_mode & 0o200
