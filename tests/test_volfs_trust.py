"""No client gains host privilege through the export, and claims are checked as Linux checks.

Each attack is made through the export API as an attached uid, and each test
asserts the refusal and that nothing on the host changed: host mode bits,
owner, extended attributes, the victim's content. The server's identity (this
process) is the owner of every host object the export makes.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

import pytest

from ninep.backend import File, SetAttr
from ninep.constants import OpenFlag, SetattrMask
from volfs import metadata
from volfs.access import NOBODY, cred_for
from volfs.export import VolExport, open_export
from volfs.options import AttachOptions, parse_options
from volfs.policy import Policy

from . import test_volfs_meta_export
from .test_volfs import host_names
from .test_volfs_meta_export import attach, make_file

meta = test_volfs_meta_export.meta  # the fixture: metadata on, a sticky world-writable `shared`

RDWR, WRONLY = int(OpenFlag.RDWR), int(OpenFlag.WRONLY)


def _plain_user() -> int:
    """A uid every Debian host knows, in its primary group only (uid 1000 as a fallback)."""
    for name in ("daemon", "bin", "sys", "games", "man", "lp", "mail", "news", "uucp"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if set(os.getgrouplist(name, entry.pw_gid)) == {entry.pw_gid}:
            return entry.pw_uid
    return 1000


ALICE = _plain_user()  # known to the host's user database (see `alice`)
STRANGER_GID = 4242  # a group the host's database does not know
PRIVS = 0o7000  # setuid, setgid, sticky
SERVER = os.geteuid()


@pytest.fixture(autouse=True)
def alice() -> None:
    """The tests need uid ALICE in the host's databases, in her primary group only."""
    try:
        entry = pwd.getpwuid(ALICE)
    except KeyError:
        pytest.skip(f"uid {ALICE} is not in this host's user database")
    if cred_for(ALICE).gids != {entry.pw_gid} or entry.pw_gid == STRANGER_GID:
        pytest.skip(f"uid {ALICE} has supplementary groups here")


def alice_gid() -> int:
    return pwd.getpwuid(ALICE).pw_gid


async def write(node: File, data: bytes = b"x") -> None:
    handle = await node.open(WRONLY)
    await handle.write(0, data)
    await handle.close()


def host_state(path: Path) -> tuple[object, ...]:
    """What an attack could change on the host: mode, owner, size, content, every xattr."""
    st = os.lstat(path)
    xattrs = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    content = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size, content, xattrs)


def stored_mode(path: Path) -> int | None:
    return metadata.load(str(path), os.lstat(path).st_mode).mode


def refused(e: pytest.ExceptionInfo[OSError], code: int) -> bool:
    return e.value.errno == code


# ---- host objects never carry privilege ----


@pytest.mark.parametrize("options", ["", "metadata"])
async def test_a_claimed_root_makes_no_setuid_host_file(export_dir: Path, options: str) -> None:
    ex = open_export(str(export_dir))
    root = await attach(ex, 0, options)
    node = await make_file(root, "id", 0o4755)
    st = os.lstat(export_dir / "id")
    assert (st.st_mode & PRIVS, st.st_uid) == (0, SERVER)
    shown = (await node.getattr(0)).mode
    assert shown == stat.S_IFREG | (0o4755 if options else 0o777)  # what the client sees
    ex.close()


async def test_a_claimed_user_never_owns_host_objects(export: VolExport, export_dir: Path) -> None:
    root = await attach(export, ALICE)
    await make_file(root, "f", 0o644, gid=ALICE)
    await root.mkdir("d", 0o755, ALICE)
    await root.symlink("s", "f", ALICE)
    await root.mknod("r", stat.S_IFREG | 0o644, 0, 0, ALICE)
    owners = {p.name: os.lstat(p).st_uid for p in export_dir.iterdir()}
    assert owners == dict.fromkeys(["f", "d", "s", "r"], SERVER)


@pytest.mark.parametrize(
    ("options", "dir_mode", "file_mode"), [("", 0o777, 0o755), ("metadata", 0o700, 0o600)]
)
async def test_no_special_bits_on_host_objects(
    export: VolExport, export_dir: Path, options: str, dir_mode: int, file_mode: int
) -> None:
    root = await attach(export, 0, options)
    await root.mkdir("d", 0o7777, 0)
    await root.mknod("r", stat.S_IFREG | 0o6755, 0, 0, 0)
    await make_file(root, "f", 0o6755)
    modes = {
        name: stat.S_IMODE(os.lstat(export_dir / name).st_mode) for name in host_names(export_dir)
    }
    assert modes == {"d": dir_mode, "r": file_mode, "f": file_mode}
    if options:  # root's write kept them in the attribute: what the client sees
        assert stored_mode(export_dir / "f") == stat.S_IFREG | 0o6755


async def test_wsl_chmod_never_sets_special_bits(export: VolExport, export_dir: Path) -> None:
    host = export_dir / "f"
    host.write_text("x")
    os.chmod(host, 0o4755)  # made setuid on the host, by the host's admin
    node = await (await attach(export, 0)).walk("f")
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o7777))
    assert stat.S_IMODE(os.lstat(host).st_mode) == 0o755
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o7555))
    assert stat.S_IMODE(os.lstat(host).st_mode) == 0o555


# ---- extended attribute namespaces ----

FOREIGN = [
    "security.capability",
    "security.selinux",
    "trusted.overlay.opaque",
    "system.posix_acl_access",
    "system.other",
    "os2.x",
    "wsl_case_sensitive",
]
CAP_SETUID_EP = bytes.fromhex("01000002" + "80000000" * 2 + "00000000" * 2)  # cap_setuid=ep


@pytest.mark.parametrize("options", ["", "metadata"])
@pytest.mark.parametrize("uid", [0, ALICE])
async def test_only_user_xattrs_are_served(export_dir: Path, options: str, uid: int) -> None:
    os.chmod(export_dir, 0o777)  # anyone may make a file there, metadata on or off
    ex = open_export(str(export_dir))
    node = await make_file(await attach(ex, uid, options), "tool", 0o755, gid=0)
    host = export_dir / "tool"
    os.setxattr(host, "trusted.secret", b"host's")  # set on the host: not the client's
    await node.setxattr("user.note", b"mine", 0)
    before = host_state(host)
    for name in FOREIGN:
        for call in (
            node.setxattr(name, CAP_SETUID_EP, 0),
            node.getxattr(name),
            node.removexattr(name),
        ):
            with pytest.raises(OSError) as e:
                await call
            assert refused(e, errno.EOPNOTSUPP), name
    for call in (node.getxattr("trusted.secret"), node.removexattr("trusted.secret")):
        with pytest.raises(OSError) as e:
            await call
        assert refused(e, errno.EOPNOTSUPP)
    assert await node.listxattr() == ["user.note"]
    assert host_state(host) == before
    assert "security.capability" not in os.listxattr(host)
    ex.close()


async def test_the_wsl_case_flag_is_still_served(export: VolExport) -> None:
    root = await attach(export, ALICE)
    await root.mkdir("d", 0o755, 0)
    d = await root.walk("d")
    await d.setxattr("system.wsl_case_sensitive", b"1", 0)
    assert await d.getxattr("system.wsl_case_sensitive") == b"1"
    await d.removexattr("system.wsl_case_sensitive")
    assert await d.getxattr("system.wsl_case_sensitive") == b"0"


# ---- with metadata, the checks Linux makes ----


async def test_truncate_needs_write_permission(meta: VolExport, export_dir: Path) -> None:
    await make_file(await attach(meta, 0), "victim", 0o644)
    host = export_dir / "victim"
    before = host_state(host)
    victim = await (await attach(meta, ALICE)).walk("victim")
    with pytest.raises(OSError) as e:
        await victim.setattr(SetAttr(SetattrMask.SIZE, size=1))
    assert refused(e, errno.EACCES)
    assert host_state(host) == before
    await (await (await attach(meta, 0)).walk("victim")).setattr(SetAttr(SetattrMask.SIZE, size=1))
    assert host.read_bytes() == b"s"  # root may


async def test_truncate_needs_write_permission_even_for_the_owner(meta: VolExport) -> None:
    shared = await (await attach(meta, ALICE)).walk("shared")
    await make_file(shared, "ro", 0o444, gid=alice_gid())
    node = await shared.walk("ro")
    with pytest.raises(OSError) as e:
        await node.setattr(SetAttr(SetattrMask.SIZE, size=0))
    assert refused(e, errno.EACCES)
    assert (await node.getattr(0)).size == len(b"secret")


async def test_ftruncate_of_a_fid_opened_for_writing_is_not_checked(meta: VolExport) -> None:
    """As Linux: ftruncate needs a descriptor opened for writing, not write permission now."""
    shared = await (await attach(meta, ALICE)).walk("shared")
    made, handle = await shared.create("ro", RDWR, 0o444, alice_gid())  # open(O_CREAT, 0444)
    await made.setattr(SetAttr(SetattrMask.SIZE, size=3))
    await handle.close()
    opened = await shared.walk("ro")
    await opened.setattr(SetAttr(SetattrMask.MODE, mode=0o644))
    handle = await opened.open(WRONLY)
    await opened.setattr(SetAttr(SetattrMask.MODE, mode=0o444))
    await opened.setattr(SetAttr(SetattrMask.SIZE, size=1))
    await handle.close()
    assert (await opened.getattr(0)).size == 1
    reader = await shared.walk("ro")
    await reader.setattr(SetAttr(SetattrMask.MODE, mode=0o644))
    await (await reader.open(int(OpenFlag.RDONLY))).close()
    await reader.setattr(SetAttr(SetattrMask.MODE, mode=0o444))
    with pytest.raises(OSError) as e:  # opened for reading only: truncate(2)'s check
        await reader.setattr(SetAttr(SetattrMask.SIZE, size=0))
    assert refused(e, errno.EACCES)


@pytest.mark.parametrize(("uid", "kept"), [(ALICE, 0o755), (0, 0o6755)])
async def test_truncate_drops_setuid_and_setgid_but_for_root(
    meta: VolExport, export_dir: Path, uid: int, kept: int
) -> None:
    node = await make_file(await attach(meta, 0), "tool", 0o6777, gid=alice_gid())
    await node.setattr(SetAttr(SetattrMask.UID, uid=ALICE))  # chown drops them: set them again
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o6755))
    mine = await (await attach(meta, uid)).walk("tool")
    await mine.setattr(SetAttr(SetattrMask.SIZE, size=1))
    assert stored_mode(export_dir / "tool") == stat.S_IFREG | kept
    assert stat.S_IMODE(os.lstat(export_dir / "tool").st_mode) == 0o600


async def test_devices_need_root(meta: VolExport, export_dir: Path) -> None:
    shared = await (await attach(meta, ALICE)).walk("shared")
    before = sorted(os.listdir(export_dir / "shared"))
    for kind in (stat.S_IFCHR, stat.S_IFBLK):
        with pytest.raises(OSError) as e:
            await shared.mknod("mem", kind | 0o666, 1, 1, alice_gid())
        assert refused(e, errno.EPERM)
    assert sorted(os.listdir(export_dir / "shared")) == before
    made = {"fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK, "whiteout": stat.S_IFCHR}  # 0:0
    for name, kind in made.items():
        await shared.mknod(name, kind | 0o600, 0, 0, alice_gid())
        assert stored_mode(export_dir / "shared" / name) == kind | 0o600
    root_shared = await (await attach(meta, 0)).walk("shared")
    await root_shared.mknod("mem", stat.S_IFCHR | 0o640, 1, 1, 0)
    assert stored_mode(export_dir / "shared" / "mem") == stat.S_IFCHR | 0o640


@pytest.mark.parametrize(
    ("uid", "mode", "gid", "after"),
    [
        (ALICE, 0o6755, None, 0o755),  # setuid; setgid with group execute
        (ALICE, 0o2745, None, 0o2745),  # setgid without group x, in the file's group: kept
        (ALICE, 0o2745, STRANGER_GID, 0o745),  # ... not in it: dropped
        (0, 0o6755, None, 0o6755),  # root keeps them
        (ALICE, 0o644, None, 0o644),
    ],
)
async def test_a_write_drops_setuid_and_setgid_but_for_root(
    meta: VolExport, export_dir: Path, uid: int, mode: int, gid: int | None, after: int
) -> None:
    root = await attach(meta, 0)
    node = await make_file(root, "tool", 0o666, gid=alice_gid() if gid is None else gid)
    await node.setattr(SetAttr(SetattrMask.UID, uid=ALICE))
    await node.setattr(SetAttr(SetattrMask.MODE, mode=mode))
    host = export_dir / "tool"
    host_mode = os.lstat(host).st_mode
    await write(await (await attach(meta, uid)).walk("tool"))
    assert stored_mode(host) == stat.S_IFREG | after
    assert (os.lstat(host).st_mode, host.read_bytes()) == (host_mode, b"xecret")


@pytest.mark.parametrize(("uid", "after"), [(ALICE, 0o755), (0, 0o6755)])
async def test_open_with_o_trunc_drops_setuid_and_setgid_but_for_root(
    meta: VolExport, export_dir: Path, uid: int, after: int
) -> None:
    node = await make_file(await attach(meta, 0), "tool", 0o666, gid=alice_gid())
    await node.setattr(SetAttr(SetattrMask.UID, uid=ALICE))
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o6755))
    mine = await (await attach(meta, uid)).walk("tool")
    await (await mine.open(WRONLY | int(OpenFlag.TRUNC))).close()
    assert stored_mode(export_dir / "tool") == stat.S_IFREG | after
    assert (export_dir / "tool").read_bytes() == b""


async def test_a_new_setuid_file_loses_setuid_at_its_first_write(
    meta: VolExport, export_dir: Path
) -> None:
    shared = await (await attach(meta, ALICE)).walk("shared")
    await make_file(shared, "tool", 0o4755, gid=alice_gid())  # made, then written by alice
    assert stored_mode(export_dir / "shared" / "tool") == stat.S_IFREG | 0o755


def test_a_write_costs_nothing_for_root_or_without_metadata() -> None:
    on, off = AttachOptions(metadata=True), AttachOptions()
    assert Policy(on, cred_for(0)).write_guard() is None
    assert Policy(off, cred_for(ALICE)).write_guard() is None
    assert Policy(on, cred_for(ALICE)).write_guard() is not None


# ---- groups: from the host's database, or the client's with client_groups ----


async def test_an_unknown_uid_is_in_no_group(meta: VolExport, export_dir: Path) -> None:
    stranger = 65533
    try:
        pwd.getpwuid(stranger)
        pytest.skip(f"uid {stranger} is known to this host")
    except KeyError:
        pass
    node = await make_file(await attach(meta, 0), "pub", 0o006, gid=NOBODY)
    await node.setattr(SetAttr(SetattrMask.UID | SetattrMask.GID, uid=NOBODY, gid=NOBODY))
    theirs = await (await attach(meta, stranger)).walk("pub")
    handle = await theirs.open(RDWR)  # the other class: read and write (Linux gives 0)
    assert await handle.read(0, 6) == b"secret"
    await handle.close()
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o060))
    with pytest.raises(OSError) as e:  # no membership of nogroup is invented
        await theirs.open(RDWR)
    assert refused(e, errno.EACCES)


@pytest.mark.parametrize(
    ("export_flag", "options", "allowed"),
    [(False, "", False), (False, "client_groups", True), (True, "", True)],
)
async def test_client_groups_lets_the_owner_chgrp_to_any_group(
    export_dir: Path, export_flag: bool, options: str, allowed: bool
) -> None:
    ex = open_export(str(export_dir), metadata=True, client_groups=export_flag)
    await (await attach(ex, 0)).mkdir("shared", 0o1777, 0)
    shared = await (await attach(ex, ALICE, options)).walk("shared")
    node = await make_file(shared, "f", 0o2750, gid=alice_gid())
    host = export_dir / "shared" / "f"
    before = host_state(host)
    chgrp = SetAttr(SetattrMask.GID, gid=STRANGER_GID)
    if allowed:
        await node.setattr(chgrp)
        assert (await node.getattr(0)).gid == STRANGER_GID
    else:
        with pytest.raises(OSError) as e:
            await node.setattr(chgrp)
        assert refused(e, errno.EPERM)
        assert host_state(host) == before
    ex.close()


async def test_client_groups_keeps_setgid_and_lets_the_client_decide_access(
    meta: VolExport,
) -> None:
    root = await attach(meta, 0)
    await root.mkdir("team", 0o2777, 0)
    team = await root.walk("team")
    await team.setattr(SetAttr(SetattrMask.GID, gid=STRANGER_GID))
    for options, kept in (("", 0), ("client_groups", stat.S_ISGID)):
        mine = await (await attach(meta, ALICE, options)).walk("team")
        name = f"new{kept}"
        node = await make_file(mine, name, 0o2750, alice_gid(), data=False)  # in a setgid dir
        assert (await node.getattr(0)).mode & 0o7777 == kept | 0o750
        await node.setattr(SetAttr(SetattrMask.MODE, mode=0o2770))  # chmod
        assert (await node.getattr(0)).mode & 0o7777 == kept | 0o770
    await make_file(team, "theirs", 0o070)
    await make_file(team, "nobodys", 0o700)
    trusting = await (await attach(meta, ALICE, "client_groups")).walk("team")
    # a membership the host cannot tell (group STRANGER_GID): the client's decision stands
    await (await (await trusting.walk("theirs")).open(RDWR)).close()
    with pytest.raises(OSError) as e:  # neither the group's nor the others' bits allow it
        await (await trusting.walk("nobodys")).open(RDWR)
    assert refused(e, errno.EACCES)
    plain = await (await attach(meta, ALICE)).walk("team")
    with pytest.raises(OSError) as e:  # without client_groups: the host's groups
        await (await plain.walk("theirs")).open(RDWR)
    assert refused(e, errno.EACCES)


def test_client_groups_is_a_flag() -> None:
    assert parse_options("metadata;client_groups").client_groups
    assert not parse_options("metadata").client_groups
    with pytest.raises(OSError) as e:
        parse_options("client_groups=1")
    assert refused(e, errno.EINVAL)


# ---- squash-root: only where metadata is on ----


async def test_squash_root_only_with_metadata(export_dir: Path) -> None:
    ex = open_export(str(export_dir), squash_root=True)
    plain = await attach(ex, 0)
    assert (await plain.getattr(0)).uid == 0  # the WSL view: the claimed uid, unsquashed
    squashed = await attach(ex, 0, "metadata")
    with pytest.raises(OSError) as e:  # the root dir is 0755 root's: nobody may not write
        await squashed.create("f", RDWR, 0o644, 0)
    assert refused(e, errno.EACCES)
    assert os.listdir(export_dir) == []
    ex.close()
