"""Case-insensitive directories seen through a drvfs mount, as WSL users expect them."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, drvfs_mount
from .posix_checks import raises_errno

pytestmark = NEEDS_FUSE

FLAG = "system.wsl_case_sensitive"


def test_names_are_found_in_any_case_and_listed_as_stored(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, server, _):
        (mnt / "Dir").mkdir()
        (mnt / "Dir" / "Foo.txt").write_text("first")
        assert (mnt / "dir" / "FOO.TXT").read_text() == "first"
        assert os.stat(mnt / "DIR" / "foo.txt").st_ino == os.stat(mnt / "Dir" / "Foo.txt").st_ino
        assert os.listdir(mnt / "dir") == ["Foo.txt"]
        assert os.listdir(server.export / "Dir") == ["Foo.txt"]
        assert os.getxattr(mnt / "Dir", FLAG) == b"0"


def test_case_variants_of_existing_names_exist_already(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, server, _):
        (mnt / "d").mkdir()
        (mnt / "d" / "File").write_text("old")
        with raises_errno(errno.EEXIST):
            os.open(mnt / "d" / "FILE", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with open(mnt / "d" / "file", "w") as f:  # O_CREAT alone opens the existing file
            f.write("new")
        assert os.listdir(server.export / "d") == ["File"]
        assert (server.export / "d" / "File").read_text() == "new"
        (mnt / "d" / "Sub").mkdir()
        with raises_errno(errno.EEXIST):
            os.mkdir(mnt / "d" / "SUB")
        with raises_errno(errno.EEXIST):
            os.symlink("x", mnt / "d" / "fILE")
        with raises_errno(errno.EEXIST):
            os.link(mnt / "d" / "File", mnt / "d" / "FiLe")
        assert sorted(os.listdir(mnt / "d")) == ["File", "Sub"]


def test_case_dir_makes_new_directories_case_sensitive(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=dir") as (mnt, _server, _):
        (mnt / "new").mkdir()
        assert os.getxattr(mnt / "new", FLAG) == b"1"
        (mnt / "new" / "a").write_text("lower")
        (mnt / "new" / "A").write_text("upper")
        assert sorted(os.listdir(mnt / "new")) == ["A", "a"]
        assert (mnt / "new" / "a").read_text() == "lower"


def test_the_flag_is_set_on_an_empty_directory_only(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, _server, _):
        (mnt / "empty").mkdir()
        os.setxattr(mnt / "empty", FLAG, b"1")
        assert os.getxattr(mnt / "empty", FLAG) == b"1"
        (mnt / "empty" / "x").write_text("")
        (mnt / "empty" / "X").write_text("")
        assert sorted(os.listdir(mnt / "empty")) == ["X", "x"]
        with raises_errno(errno.ENOTEMPTY):
            os.setxattr(mnt / "empty", FLAG, b"0")


@pytest.mark.xfail(
    strict=True,
    reason="the kernel's VFS finds both names to be one inode and returns without asking "
    "the filesystem (the Linux 9p client has the same limit)",
)
def test_renaming_to_a_case_variant_changes_the_stored_case(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, server, _):
        (mnt / "d").mkdir()
        (mnt / "d" / "name").write_text("")
        os.rename(mnt / "d" / "name", mnt / "d" / "NAME")
        assert os.listdir(server.export / "d") == ["NAME"]
