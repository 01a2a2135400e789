"""drvfs mount options: where each goes, what is refused, how mount sources name exports."""

from __future__ import annotations

import pytest

from drvfs.options import (
    _OPTIONS,
    FUSE_IO_SIZE,
    MountOptions,
    OptionError,
    documented,
    export_name,
    parse_options,
)
from ninep.constants import DEFAULT_MSIZE, IOHDRSZ
from ninep.transport import DEFAULT_ADDRESS


def test_defaults() -> None:
    opts = parse_options("")
    assert opts.server == DEFAULT_ADDRESS
    assert opts.aname("C") == "C"
    assert opts.fuse == {"default_permissions"}
    assert not opts.read_only and not opts.writeback_cache
    assert opts.msize == DEFAULT_MSIZE == FUSE_IO_SIZE + IOHDRSZ
    assert opts.timeout == 60


def test_server_options_travel_in_the_aname_in_order() -> None:
    opts = parse_options("metadata,case=dir,uid=1000,gid=1000,umask=022,fmask=111,dmask=0")
    assert opts.aname("C") == "C;metadata;case=dir;uid=1000;gid=1000;umask=022;fmask=111;dmask=0"
    assert opts.fuse == {"default_permissions"}


def test_a_repeated_server_option_counts_once_with_the_last_value() -> None:
    assert parse_options("uid=1,metadata,uid=2").aname("D") == "D;metadata;uid=2"


def test_ro_goes_to_the_server_and_to_fuse() -> None:
    opts = parse_options("ro")
    assert opts.aname("C") == "C;ro"
    assert "ro" in opts.fuse and opts.read_only


def test_fuse_and_client_options() -> None:
    opts = parse_options(
        "allow_other,noatime,nosuid,server=unix:/run/9p.sock,attr_timeout=2.5,"
        "entry_timeout=0,negative_timeout=3,writeback_cache,msize=65536,timeout=2"
    )
    assert opts.fuse == {"default_permissions", "allow_other", "noatime", "nosuid"}
    assert opts.server == "unix:/run/9p.sock"
    assert (opts.attr_timeout, opts.entry_timeout, opts.negative_timeout) == (2.5, 0.0, 3.0)
    assert opts.writeback_cache and opts.msize == 65536 and opts.timeout == 2.0
    assert parse_options("timeout=0").timeout == 0  # the server may stay silent forever
    assert opts.aname("C") == "C"


def test_options_build_on_a_base() -> None:
    opts = parse_options("uid=5", parse_options("metadata,allow_other"))
    assert opts.aname("C") == "C;metadata;uid=5"
    assert "allow_other" in opts.fuse


def test_fstab_noise_is_ignored() -> None:
    opts = parse_options("defaults,rw,noauto,_netdev,nofail,x-systemd.automount,comment=x,users")
    assert opts == MountOptions()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server=http://x", "unknown scheme"),
        ("msize=100", "'msize' must be at least"),
        ("attr_timeout=-1", "'attr_timeout' expects seconds"),
        ("attr_timeout=soon", "'attr_timeout' expects seconds from 0, not 'soon'"),
        ("timeout=abc", "'timeout' expects seconds from 0, not 'abc'"),
        ("msize=big", "'msize' expects a number of bytes, not 'big'"),
        ("timeout=-1", "'timeout' expects seconds"),
        ("timeout=", "'timeout' needs a value"),
    ],
)
def test_bad_options_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        parse_options(text)


def test_debug_is_drvfs_own_and_never_sent_to_the_server() -> None:
    opts = parse_options("debug,metadata")
    assert opts.debug and opts.aname("C") == "C;metadata"
    assert not parse_options("metadata").debug


def test_every_option_drvfs_knows_is_documented() -> None:
    """The man pages' table (`documented`) holds every declared option, with help."""
    rows = documented()
    names = [name for names, _, _ in rows for name in names]
    assert sorted(names) == sorted([*_OPTIONS, "x-*", "comment"])
    assert all(text for _, _, text in rows)
    value, text = {names[0]: (value, text) for names, value, text in rows}["timeout"]
    assert value == "SECONDS" and text.endswith("(default 60; 0: wait forever)")


def test_the_servers_options_pass_through_for_the_server_to_judge() -> None:
    opts = parse_options("bogus,case=upper,uid=4294967295,metadata,allow_other")
    assert opts.aname("C") == "C;bogus;case=upper;uid=4294967295;metadata"


def test_options_that_would_split_the_attach_name_are_refused() -> None:
    for text in ("case=a;b", "x\0y"):
        with pytest.raises(OptionError, match="cannot be sent to the server"):
            parse_options(text)
    assert parse_options("case=a;b,metadata", sloppy=True).aname("C") == "C;metadata"


@pytest.mark.parametrize("spec", ["C", "C:", "C:\\", "C:/"])
def test_mount_sources_name_exports(spec: str) -> None:
    assert export_name(spec) == "C"


@pytest.mark.parametrize("spec", ["", ":", "C;metadata", "a/b"])
def test_bad_mount_sources_are_refused(spec: str) -> None:
    with pytest.raises(OptionError):
        export_name(spec)
