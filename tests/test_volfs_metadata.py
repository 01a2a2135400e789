"""The metadata codec (QEMU's mapped-xattr format): bytes, validation, reports, host I/O."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volfs.hostio import proc_path
from volfs.metadata import (
    INTERNAL_NAMES,
    NO_ID,
    Field,
    Ident,
    Metadata,
    _Once,
    decode,
    effective,
    encode,
    encode_all,
    ident_of,
    is_internal,
    load,
    load_mode,
    makedev,
    store,
)
from volfs.xattrs import listed

LOGGER = "volfs.metadata"
UID, GID, MODE, RDEV = (f"user.virtfs.{f}" for f in ("uid", "gid", "mode", "rdev"))
REG, DIR, LNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK
FIFO, SOCK, CHR, BLK = stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK
TYPES = [REG, DIR, LNK, FIFO, SOCK, CHR, BLK]
# Which stored type each host type accepts (0, "permission bits only", always fits).
ACCEPTS = {
    REG: {REG, LNK, FIFO, SOCK, CHR, BLK},
    DIR: {DIR},
    LNK: {LNK},
    FIFO: {FIFO},
    SOCK: {SOCK},
    CHR: {CHR},
    BLK: {BLK},
}

_idents = itertools.count()


def fresh_ident() -> Ident:
    """An identity no other test reports on (reports are remembered per identity)."""
    return (1 << 40, next(_idents))


def glibc_makedev(major: int, minor: int) -> int:
    """glibc's dev_t encoding, written out from its definition."""
    return (
        ((major & 0xFFFFF000) << 32)
        | ((major & 0xFFF) << 8)
        | ((minor & 0xFFFFFF00) << 12)
        | (minor & 0xFF)
    )


ids = st.integers(0, NO_ID - 1)
perms = st.integers(0, 0o7777)
stored_types = st.sampled_from([0, *TYPES])
rdevs = st.integers(0, (1 << 64) - 1)


@st.composite
def metadata_and_host(draw: st.DrawFn) -> tuple[Metadata, int]:
    """Valid metadata (any field absent) and a host st_mode it fits."""
    kind = draw(stored_types)
    hosts = [t for t in TYPES if kind == 0 or kind in ACCEPTS[t]]
    host = draw(st.sampled_from(hosts)) | draw(perms)
    md = Metadata(
        uid=draw(st.none() | ids),
        gid=draw(st.none() | ids),
        mode=draw(st.none() | st.just(kind | draw(perms))),
        rdev=draw(st.none() | rdevs),
    )
    return md, host


# ---- the bytes ----


def test_values_are_little_endian_of_fixed_size() -> None:
    assert encode("uid", 1000) == bytes.fromhex("e8030000")
    assert encode("gid", 0x01020304) == bytes.fromhex("04030201")
    assert encode("mode", REG | 0o644) == bytes.fromhex("a4810000")  # type bits included
    assert encode("mode", DIR | 0o2775) == struct.pack("<I", 0o42775)
    assert encode("rdev", makedev(8, 1)) == bytes.fromhex("0108000000000000")


@given(major=st.integers(0, 0x7FFF_FFFF), minor=st.integers(0, 0x7FFF_FFFF))
def test_makedev_is_glibcs(major: int, minor: int) -> None:
    dev = makedev(major, minor)
    assert dev == os.makedev(major, minor)
    assert (os.major(dev), os.minor(dev)) == (major, minor)
    assert encode("rdev", dev) == struct.pack("<Q", dev)


@given(major=st.integers(0, 0xFFFF_FFFF), minor=st.integers(0, 0xFFFF_FFFF))
def test_makedev_takes_whole_u32s(major: int, minor: int) -> None:
    assert makedev(major, minor) == glibc_makedev(major, minor)


@pytest.mark.parametrize(("major", "minor"), [(-1, 0), (0, -1), (1 << 32, 0), (0, 1 << 32)])
def test_makedev_refuses_numbers_beyond_u32(major: int, minor: int) -> None:
    with pytest.raises(ValueError):
        makedev(major, minor)


def test_stored_rdev_is_what_the_host_kernel_reports_for_a_device(tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, CHR | 0o666, makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod of a device needs CAP_MKNOD")
    assert os.stat(node).st_rdev == glibc_makedev(1, 3)


@given(pair=metadata_and_host())
def test_decode_inverts_encode(pair: tuple[Metadata, int]) -> None:
    md, host = pair
    assert decode(encode_all(md), host) == md


def test_absent_attributes_decode_to_none() -> None:
    assert decode({}, REG | 0o644) == Metadata(None, None, None, None)
    assert decode({"user.other": b"x"}, DIR | 0o755) == Metadata()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uid", -1),
        ("uid", NO_ID),
        ("gid", 1 << 32),
        ("mode", -1),
        ("mode", 0o200000),  # beyond st_mode's 16 bits
        ("mode", 0o030644),  # no such file type
        ("rdev", 1 << 64),
        ("rdev", -1),
    ],
)
def test_encode_refuses_what_the_format_cannot_hold(field: Field, value: int) -> None:
    with pytest.raises(ValueError):
        encode(field, value)


# ---- validation, field by field ----


@given(
    pair=metadata_and_host(),
    field=st.sampled_from(["uid", "gid", "mode", "rdev"]),
    data=st.data(),
)
def test_a_wrong_length_drops_that_field_only(
    pair: tuple[Metadata, int], field: Field, data: st.DataObject
) -> None:
    md, host = pair
    size = 8 if field == "rdev" else 4
    bad = data.draw(st.binary(max_size=12).filter(lambda b: len(b) != size))
    raw = encode_all(md) | {f"user.virtfs.{field}": bad}
    assert decode(raw, host) == replace(md, **{field: None})


@pytest.mark.parametrize("host", TYPES)
@pytest.mark.parametrize("kind", [0, *TYPES])
def test_a_mode_whose_type_contradicts_the_host_is_dropped(host: int, kind: int) -> None:
    raw = {MODE: encode("mode", kind | 0o640), UID: encode("uid", 7)}
    md = decode(raw, host | 0o600)
    assert md.uid == 7
    fits = kind == 0 or kind in ACCEPTS[host]
    assert md.mode == (kind | 0o640 if fits else None)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (UID, struct.pack("<I", NO_ID)),
        (GID, struct.pack("<I", NO_ID)),
        (MODE, struct.pack("<I", 0o200644)),
        (MODE, struct.pack("<I", 0o030644)),
    ],
)
def test_invalid_values_are_dropped(name: str, data: bytes) -> None:
    raw = encode_all(Metadata(1, 2, REG | 0o644, 3)) | {name: data}
    md = decode(raw, REG)
    assert getattr(md, name.rsplit(".", 1)[1]) is None
    assert sum(v is None for v in (md.uid, md.gid, md.mode, md.rdev)) == 1


def test_each_problem_is_logged_once_per_file_and_field(caplog: pytest.LogCaptureFixture) -> None:
    ident, other = fresh_ident(), fresh_ident()
    bad_mode = {MODE: encode("mode", REG | 0o644)}  # on a host directory
    bad_uid = {UID: b"\x01\x02"}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            assert decode(bad_mode, DIR | 0o755, ident).mode is None
        assert len(caplog.records) == 1
        assert MODE in caplog.messages[0]
        assert f"inode {ident[1]}" in caplog.messages[0]

        for _ in range(2):
            assert decode(bad_uid, DIR | 0o755, ident).uid is None  # another field
        assert len(caplog.records) == 2
        assert UID in caplog.messages[1]
        assert "2 bytes instead of 4" in caplog.messages[1]

        decode(bad_mode, DIR | 0o755, other)  # another file
        assert len(caplog.records) == 3

        decode(bad_mode, DIR | 0o755)  # no identity: every time
        decode(bad_mode, DIR | 0o755)
        assert len(caplog.records) == 5
        assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_valid_metadata_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    raw = encode_all(Metadata(1, 2, LNK | 0o777, 0))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        decode(raw, REG | 0o600, fresh_ident())
    assert caplog.records == []


def test_reports_are_remembered_within_a_bound() -> None:
    once = _Once(2)
    assert [once.first(k) for k in "aab"] == [True, False, True]
    assert once.first("a") is False  # refreshed: "b" is now the oldest
    assert once.first("c") is True  # forgets "b"
    assert [once.first(k) for k in "acb"] == [False, False, True]


# ---- what a client is shown ----


def test_effective_takes_stored_fields_over_the_host(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    st_ = os.stat(path)
    assert effective(st_, Metadata()) == (st_.st_mode, st_.st_uid, st_.st_gid, st_.st_rdev)
    dev = os.makedev(4, 64)
    full = effective(st_, Metadata(1000, 1001, CHR | 0o620, dev))
    assert full == (CHR | 0o620, 1000, 1001, dev)
    assert effective(st_, Metadata(gid=5)).gid == 5
    assert effective(st_, Metadata(gid=5)).uid == st_.st_uid


def test_a_mode_without_type_takes_the_host_type(tmp_path: Path) -> None:
    st_ = os.stat(tmp_path)
    assert effective(st_, decode({MODE: encode("mode", 0o1777)}, st_.st_mode)).mode == DIR | 0o1777


def test_internal_names_are_the_whole_virtfs_namespace() -> None:
    assert {UID, GID, MODE, RDEV} == INTERNAL_NAMES
    assert all(is_internal(n) for n in INTERNAL_NAMES)
    assert is_internal("user.virtfs.system.posix_acl_access")  # QEMU's mapped ACLs too
    for name in ("user.virtfs", "user.other", "trusted.virtfs.uid", "security.selinux"):
        assert not is_internal(name)
    names = ["user.a", MODE, "security.x", "user.virtfs.x", "trusted.y", "system.z"]
    names += ["user.volfs.case_sensitive", "user.wsl_case_sensitive", "user.b"]
    assert listed(names) == ["user.a", "user.b"]  # only user. names, less the export's own


# ---- on a real host file ----


@pytest.fixture
def opath(tmp_path: Path) -> Iterator[int]:
    """An O_PATH fd on a fresh empty regular file (what a Node holds)."""
    path = tmp_path / "obj"
    path.write_bytes(b"")
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW)
    yield fd
    os.close(fd)


def test_store_then_load_on_a_host_file(opath: int) -> None:
    path, before = proc_path(opath), os.stat(opath)
    dev = os.makedev(4, 64)
    store(path, uid=1000, gid=1001, mode=CHR | 0o620, rdev=dev)
    assert os.getxattr(path, UID) == struct.pack("<I", 1000)
    assert os.getxattr(path, GID) == struct.pack("<I", 1001)
    assert os.getxattr(path, MODE) == struct.pack("<I", CHR | 0o620)
    assert os.getxattr(path, RDEV) == struct.pack("<Q", dev)
    after = os.stat(opath)
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )
    assert load(path, after.st_mode, ident_of(after)) == Metadata(1000, 1001, CHR | 0o620, dev)


def test_store_writes_only_the_given_fields(opath: int) -> None:
    path = proc_path(opath)
    store(path, mode=REG | 0o640)
    assert sorted(os.listxattr(path)) == [MODE]
    store(path, gid=50)
    assert load(path, os.stat(opath).st_mode) == Metadata(gid=50, mode=REG | 0o640)


def test_store_checks_every_value_before_writing(opath: int) -> None:
    path = proc_path(opath)
    with pytest.raises(ValueError):
        store(path, uid=5, mode=0o030644)
    assert os.listxattr(path) == []


def test_load_of_a_bare_file_is_empty(opath: int) -> None:
    assert load(proc_path(opath), os.stat(opath).st_mode) == Metadata()
    assert load_mode(proc_path(opath), REG) is None


def test_load_mode_reads_the_mode_alone(opath: int) -> None:
    path = proc_path(opath)
    store(path, uid=7, mode=REG | 0o4755)
    assert load_mode(path, REG) == REG | 0o4755
    store(path, mode=DIR | 0o755)  # contradicts the host: ignored, as by `load`
    assert load_mode(path, REG) is None


def test_load_drops_a_bad_field_on_disk_and_logs_it(
    opath: int, caplog: pytest.LogCaptureFixture
) -> None:
    path = proc_path(opath)
    store(path, uid=1000, gid=1000)
    os.setxattr(path, MODE, b"\xa4\x81")  # a 2-byte mode: truncated by some tool
    st_ = os.stat(opath)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert load(path, st_.st_mode, ident_of(st_)) == Metadata(1000, 1000, None, None)
        load(path, st_.st_mode, ident_of(st_))
    assert len(caplog.records) == 1
    assert MODE in caplog.messages[0]


def test_load_of_a_host_directory(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        path, st_ = proc_path(fd), os.stat(fd)
        store(path, uid=7, mode=DIR | 0o3777)
        assert load(path, st_.st_mode, ident_of(st_)) == Metadata(uid=7, mode=DIR | 0o3777)
        store(path, mode=REG | 0o644)  # contradicts the host: ignored when read
        assert load(path, st_.st_mode, ident_of(st_)) == Metadata(uid=7)
    finally:
        os.close(fd)


def test_load_of_a_host_symlink_is_empty(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("target")
    fd = os.open(tmp_path / "link", os.O_PATH | os.O_NOFOLLOW)
    try:
        st_ = os.stat(fd)
        assert stat.S_ISLNK(st_.st_mode)
        assert load(proc_path(fd), st_.st_mode) == Metadata()
        with pytest.raises(PermissionError):  # Linux: no user.* attributes on symlinks
            store(proc_path(fd), uid=1)
    finally:
        os.close(fd)


def test_load_on_a_filesystem_without_xattrs_is_empty() -> None:
    with pytest.raises(OSError) as info:
        os.getxattr("/proc/self/status", UID)
    assert info.value.errno == errno.ENOTSUP
    assert load("/proc/self/status", REG | 0o444) == Metadata()


def test_load_raises_host_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "missing"), REG)
