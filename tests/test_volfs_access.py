"""POSIX permission rules: against a literal reference, and against the real kernel."""

from __future__ import annotations

import errno
import itertools
import os
import pwd
import random
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ninep.constants import OpenFlag
from volfs.access import (
    NOBODY,
    R_OK,
    W_OK,
    X_OK,
    Cred,
    check_access,
    check_chmod,
    check_chown,
    check_delete,
    check_mknod,
    check_new_group,
    chmod_mode,
    chown_mode,
    cred_for,
    kill_privs,
    may_access,
    may_chmod,
    may_chown,
    may_delete,
    may_link,
    may_mknod,
    new_file_gid,
    new_mode,
    open_want,
)

from .children import as_ids, capabilities

# ---- a small reference, written from the POSIX text, kept apart from the code ----


def ref_access(uid: int, groups: set[int], mode: int, owner: int, group: int, want: int) -> bool:
    """POSIX: root passes, except execute of a non-directory without any x bit; else one class."""
    is_dir = (mode & 0o170000) == 0o040000
    if uid == 0:
        if want & 1:
            return is_dir or (mode & 0o111) != 0
        return True
    if uid == owner:
        perm = (mode >> 6) & 7
    elif group in groups:
        perm = (mode >> 3) & 7
    else:
        perm = mode & 7
    return all(perm & bit for bit in (4, 2, 1) if want & bit)


def ref_delete(
    uid: int, groups: set[int], dir_mode: int, dir_owner: int, dir_group: int, file_owner: int
) -> bool:
    """Write and search on the directory; if it is sticky, only root or one of the owners."""
    if not ref_access(uid, groups, dir_mode, dir_owner, dir_group, 2 | 1):
        return False
    sticky = (dir_mode & 0o1000) != 0
    return not sticky or uid == 0 or uid in (file_owner, dir_owner)


def ref_chown(
    uid: int, groups: set[int], owner: int, group: int, new_owner: int | None, new_group: int | None
) -> bool:
    """Root: anything. Owner: keep the owner; group to the current one or one of his own."""
    if uid == 0:
        return True
    if new_owner is not None and not (uid == owner and new_owner == owner):
        return False
    return new_group is None or (uid == owner and (new_group == group or new_group in groups))


# ---- properties ----

ids = st.sampled_from([0, 1, 1000, 1001, 1002]) | st.integers(0, 2**32 - 2)
group_sets = st.sets(st.sampled_from([0, 1, 1000, 1001, 2000]) | st.integers(0, 2**32 - 2))
types = st.sampled_from([stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFIFO])
modes = st.builds(lambda t, p: t | p, types, st.integers(0, 0o7777))
wants = st.integers(0, 7)


@st.composite
def creds(draw: st.DrawFn) -> Cred:
    gid = draw(ids)
    return Cred(draw(ids), gid, frozenset(draw(group_sets)) | {gid})


@given(cred=creds(), mode=modes, owner=ids, group=ids, want=wants)
def test_may_access_is_posix(cred: Cred, mode: int, owner: int, group: int, want: int) -> None:
    expected = ref_access(cred.uid, set(cred.gids), mode, owner, group, want)
    assert may_access(cred, mode, owner, group, want) is expected


@given(cred=creds(), mode=modes, owner=ids, group=ids, file_owner=ids)
def test_may_delete_is_posix(
    cred: Cred, mode: int, owner: int, group: int, file_owner: int
) -> None:
    dir_mode = stat.S_IFDIR | stat.S_IMODE(mode)
    expected = ref_delete(cred.uid, set(cred.gids), dir_mode, owner, group, file_owner)
    assert may_delete(cred, dir_mode, owner, group, file_owner) is expected


@given(
    cred=creds(),
    owner=ids,
    group=ids,
    new_owner=st.none() | ids,
    new_group=st.none() | ids,
)
def test_may_chown_is_posix(
    cred: Cred, owner: int, group: int, new_owner: int | None, new_group: int | None
) -> None:
    expected = ref_chown(cred.uid, set(cred.gids), owner, group, new_owner, new_group)
    assert may_chown(cred, owner, group, new_owner, new_group) is expected


@given(cred=creds(), owner=ids)
def test_only_the_owner_or_root_may_chmod(cred: Cred, owner: int) -> None:
    assert may_chmod(cred, owner) is (cred.uid == 0 or cred.uid == owner)


# ---- examples ----

ALICE = Cred(1000, 1000, frozenset({1000, 2000}))
BOB = Cred(1001, 1001, frozenset({1001}))
ROOT = Cred(0, 0, frozenset({0}))
REG = stat.S_IFREG


def test_a_user_cannot_read_another_users_private_file() -> None:
    assert not may_access(ALICE, REG | 0o600, 1001, 1001, R_OK)
    assert may_access(BOB, REG | 0o600, 1001, 1001, R_OK | W_OK)
    assert may_access(ROOT, REG | 0o600, 1001, 1001, R_OK | W_OK)


def test_the_owner_class_decides_even_when_it_grants_less() -> None:
    assert not may_access(ALICE, REG | 0o077, 1000, 1000, R_OK)
    assert may_access(ALICE, REG | 0o070, 1001, 2000, R_OK | W_OK | X_OK)  # supplementary
    assert not may_access(ALICE, REG | 0o707, 1001, 2000, R_OK)  # group class, not other


def test_root_executes_only_what_someone_may_execute() -> None:
    assert not may_access(ROOT, REG | 0o666, 0, 0, X_OK)
    assert may_access(ROOT, REG | 0o001, 5, 5, R_OK | W_OK | X_OK)
    assert may_access(ROOT, stat.S_IFDIR | 0o000, 5, 5, R_OK | W_OK | X_OK)


def test_sticky_directories_protect_other_users_entries() -> None:
    tmp = stat.S_IFDIR | 0o1777
    assert may_delete(ALICE, tmp, 0, 0, 1000)
    assert not may_delete(ALICE, tmp, 0, 0, 1001)
    assert may_delete(ALICE, tmp, 1000, 0, 1001)  # the directory's owner
    assert may_delete(ROOT, tmp, 5, 5, 1001)
    assert may_delete(ALICE, stat.S_IFDIR | 0o777, 0, 0, 1001)


def test_chown_rules() -> None:
    assert may_chown(ALICE, 1000, 1000, new_gid=2000)
    assert not may_chown(ALICE, 1000, 1000, new_gid=1001)  # not his group
    assert not may_chown(ALICE, 1000, 1000, new_uid=1001)  # giving away
    assert may_chown(ALICE, 1000, 1000, new_uid=1000, new_gid=1000)  # no-op
    assert not may_chown(ALICE, 1001, 1001, new_uid=1001)  # a no-op, but not the owner
    assert not may_chown(ALICE, 1001, 2000, new_gid=2000)
    assert may_chown(ROOT, 1001, 1001, new_uid=5, new_gid=6)


def test_chmod_drops_setgid_for_a_non_member() -> None:
    assert chmod_mode(ALICE, REG | 0o2755, 1001) == REG | 0o755
    assert chmod_mode(ALICE, REG | 0o2755, 2000) == REG | 0o2755
    assert chmod_mode(ROOT, REG | 0o6755, 1001) == REG | 0o6755
    assert chmod_mode(ALICE, REG | 0o4755, 1001) == REG | 0o4755  # setuid stays


def test_new_objects_in_setgid_directories() -> None:
    parent = stat.S_IFDIR | 0o2775
    assert new_file_gid(parent, 2000, 1000) == 2000
    assert new_file_gid(stat.S_IFDIR | 0o775, 2000, 1000) == 1000
    assert new_mode(BOB, parent, 2000, stat.S_IFDIR | 0o755) == stat.S_IFDIR | 0o2755
    assert new_mode(BOB, parent, 2000, REG | 0o2755) == REG | 0o755  # not in group 2000
    assert new_mode(ALICE, parent, 2000, REG | 0o2755) == REG | 0o2755
    assert new_mode(BOB, parent, 2000, REG | 0o2745) == REG | 0o2745  # no group x: kept
    assert new_mode(BOB, stat.S_IFDIR | 0o775, 2000, REG | 0o2755) == REG | 0o2755


def test_client_groups_lets_the_clients_membership_decision_stand() -> None:
    trusting = replace(BOB, client_groups=True)  # BOB is in no group 2000 on the host
    assert not may_chown(BOB, 1001, 1001, new_gid=2000)
    assert may_chown(trusting, 1001, 1001, new_gid=2000)  # the owner's chgrp
    assert not may_chown(trusting, 1000, 1000, new_gid=2000)  # still only the owner's
    assert not may_chown(trusting, 1001, 1001, new_uid=1000)  # and never giving away
    assert chmod_mode(trusting, REG | 0o2755, 2000) == REG | 0o2755
    parent = stat.S_IFDIR | 0o2775
    assert new_mode(trusting, parent, 2000, REG | 0o2755) == REG | 0o2755
    assert kill_privs(trusting, REG | 0o2644, 2000) == REG | 0o2644
    # access turning on a membership the host cannot tell: the group's or the others' bits
    assert may_access(trusting, REG | 0o070, 1000, 2000, R_OK)
    assert may_access(trusting, REG | 0o004, 1000, 2000, R_OK)
    assert not may_access(trusting, REG | 0o700, 1000, 2000, R_OK)
    assert not may_access(BOB, REG | 0o070, 1000, 2000, R_OK)  # without it: the host's groups
    bounded = replace(BOB, client_groups=False, bounded=True)
    with pytest.raises(OSError) as e:
        check_new_group(bounded, stat.S_IFDIR | 0o755, 2000, "f")
    assert e.value.errno == errno.EPERM
    check_new_group(bounded, stat.S_IFDIR | 0o2755, 2000, "f")  # a setgid parent's group
    check_new_group(bounded, stat.S_IFDIR | 0o755, 1001, "f")  # its own
    check_new_group(BOB, stat.S_IFDIR | 0o755, 2000, "f")  # a trusted peer's, as said


def test_a_write_or_truncate_drops_privileges_as_linux() -> None:
    assert kill_privs(BOB, REG | 0o6755, 1001) == REG | 0o755  # setuid; setgid with group x
    assert kill_privs(BOB, REG | 0o2745, 1001) == REG | 0o2745  # a member, no group x: kept
    assert kill_privs(BOB, REG | 0o2745, 2000) == REG | 0o745  # not a member
    assert kill_privs(ROOT, REG | 0o6755, 1001) == REG | 0o6755  # CAP_FSETID
    assert kill_privs(BOB, stat.S_IFDIR | 0o2775, 2000) == stat.S_IFDIR | 0o2775
    assert kill_privs(BOB, REG | 0o1777, 2000) == REG | 0o1777


def test_devices_need_root() -> None:
    for kind in (stat.S_IFCHR, stat.S_IFBLK):
        assert not may_mknod(BOB, kind | 0o666, os.makedev(1, 1))
        assert may_mknod(ROOT, kind | 0o666, os.makedev(1, 1))
    assert may_mknod(BOB, stat.S_IFCHR | 0o600, 0)  # a whiteout
    assert not may_mknod(BOB, stat.S_IFBLK | 0o600, 0)
    for kind in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFREG):
        assert may_mknod(BOB, kind | 0o644, os.makedev(1, 1))
    with pytest.raises(PermissionError) as info:
        check_mknod(BOB, stat.S_IFCHR | 0o666, os.makedev(1, 1), "'mem'")
    assert info.value.errno == errno.EPERM and "CAP_MKNOD" in str(info.value)


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        (OpenFlag.RDONLY, R_OK),
        (OpenFlag.WRONLY, W_OK),
        (OpenFlag.RDWR, R_OK | W_OK),
        (OpenFlag.ACCMODE, R_OK | W_OK),
        (OpenFlag.RDONLY | OpenFlag.TRUNC, R_OK | W_OK),
        (OpenFlag.WRONLY | OpenFlag.APPEND | OpenFlag.CREAT, W_OK),
        (OpenFlag.RDONLY | OpenFlag.DIRECTORY | OpenFlag.NOFOLLOW, R_OK),
    ],
)
def test_open_want(flags: int, want: int) -> None:
    assert open_want(int(flags)) == want


def test_checks_raise_the_errno_linux_gives() -> None:
    with pytest.raises(PermissionError) as info:
        check_access(ALICE, REG | 0o600, 1001, 1001, R_OK | W_OK, "'secret'")
    assert info.value.errno == errno.EACCES
    assert "uid 1000 may not read+write 'secret'" in str(info.value)
    assert "mode 0600, owner 1001, group 1001" in str(info.value)

    tmp = stat.S_IFDIR | 0o1777
    with pytest.raises(PermissionError) as info:
        check_delete(ALICE, tmp, 0, 0, 1001, "'f'")
    assert info.value.errno == errno.EPERM
    with pytest.raises(PermissionError) as info:
        check_delete(ALICE, stat.S_IFDIR | 0o755, 0, 0, 1000, "'f'")
    assert info.value.errno == errno.EACCES

    with pytest.raises(PermissionError) as info:
        check_chmod(ALICE, 1001, "'f'")
    assert info.value.errno == errno.EPERM
    with pytest.raises(PermissionError) as info:
        check_chown(ALICE, 1000, 1000, 1001, None, "'f'")
    assert info.value.errno == errno.EPERM
    assert "to owner 1001, group unchanged" in str(info.value)

    check_access(ROOT, REG | 0o000, 5, 5, R_OK | W_OK, "'f'")
    check_delete(ALICE, tmp, 0, 0, 1000, "'f'")
    check_chmod(ALICE, 1000, "'f'")
    check_chown(ALICE, 1000, 1000, None, 2000, "'f'")


# ---- credentials from the host's databases ----


def unknown_uid() -> int:
    """A uid the host's user database does not know."""
    return next(u for u in range(4_000_000_000, 4_000_001_000) if not _known(u))


def _known(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_root_is_root_unless_squashed() -> None:
    root = cred_for(0)
    assert root.root and root.gid == 0 and 0 in root.gids
    assert set(os.getgrouplist("root", 0)) <= root.gids
    squashed = cred_for(0, squash_root=True)
    assert (squashed.uid, squashed.root) == (NOBODY, False)
    assert squashed.gid in squashed.gids
    assert cred_for(0, squash_root=1234).uid == 1234
    assert cred_for(1000, squash_root=True).uid == 1000
    with pytest.raises(ValueError):
        cred_for(0, squash_root=0)


def test_an_unknown_uid_is_in_no_group() -> None:
    uid = unknown_uid()
    cred = cred_for(uid)
    assert cred == Cred(uid, NOBODY, frozenset())  # nogroup only as new objects' group
    assert may_access(cred, stat.S_IFREG | 0o006, NOBODY, NOBODY, R_OK | W_OK)  # the other class
    assert not may_access(cred, stat.S_IFREG | 0o060, NOBODY, NOBODY, R_OK)


# ---- against the real kernel ----

CAPS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4}
CAPS |= {"CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_MKNOD": 27}


def _missing_caps() -> list[str]:
    eff = capabilities()
    return [name for name, bit in CAPS.items() if not eff >> bit & 1]


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_missing_caps()),
    reason="the kernel comparison needs root with "
    + ", ".join(CAPS)
    + " (files of other owners, setuid in a child)",
)

UIDS = [0, 1000, 1001, 1002]
GIDS = [0, 1000, 1001, 2000, 3000]
N_CASES = 50


def random_cred(rng: random.Random) -> Cred:
    uid = rng.choice(UIDS)
    gid = rng.choice(GIDS)
    return Cred(uid, gid, frozenset(rng.sample(GIDS, rng.randint(0, 3))) | {gid})


def as_user(cred: Cred, act: Callable[..., object], *args: object) -> object:
    """Run `act(*args)` in a forked child with `cred`'s ids and groups, umask 0; its JSON result."""
    return as_ids(cred.uid, cred.gid, cred.gids, act, *args)


def errno_of(fn: Callable[[], object]) -> int:
    """0 if `fn` succeeds, else the errno it fails with."""
    try:
        fn()
    except OSError as e:
        return e.errno or -1
    return 0


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[int]:
    """A directory fd open to all: children resolve names from it, whatever its ancestors."""
    path = tmp_path / "arena"
    path.mkdir()
    os.chmod(path, 0o777)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def make(arena: int, name: str, is_dir: bool, mode: int, uid: int, gid: int) -> None:
    """Create `name` in the arena with exactly that owner, group and permission bits."""
    if is_dir:
        os.mkdir(name, dir_fd=arena)
    else:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, dir_fd=arena))
    os.chown(name, uid, gid, dir_fd=arena)
    os.chmod(name, mode, dir_fd=arena)
    assert stat.S_IMODE(os.stat(name, dir_fd=arena).st_mode) == mode


def kernel_access(arena: int, name: str, is_dir: bool) -> dict[str, bool]:
    """What the kernel lets the current process do to `name`: by real attempts, and access()."""
    out = {}
    for want in range(1, 8):
        out[f"access{want}"] = os.access(name, want, dir_fd=arena)

    def opens(flags: int) -> bool:
        try:
            os.close(os.open(name, flags, dir_fd=arena))
        except PermissionError:
            return False
        return True

    if is_dir:
        out["read"] = opens(os.O_RDONLY | os.O_DIRECTORY)
        out["search"] = errno_of(lambda: os.stat(f"{name}/probe", dir_fd=arena)) == 0
    else:
        out["read"] = opens(os.O_RDONLY)
        out["write"] = opens(os.O_WRONLY)
    return out


def create(arena: int, name: str, is_dir: bool, mode: int) -> None:
    """Create `name` in the arena as the current process, asking for `mode`."""
    if is_dir:
        os.mkdir(name, mode, dir_fd=arena)
    else:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode, dir_fd=arena))


@needs_root
def test_may_access_matches_the_kernel(arena: int) -> None:
    rng = random.Random(4)
    for i in range(N_CASES):
        is_dir = rng.random() < 0.4
        mode = rng.randrange(0o10000)
        uid, gid = rng.choice(UIDS), rng.choice(GIDS)
        cred = random_cred(rng)
        name = f"o{i}"
        make(arena, name, is_dir, mode, uid, gid)
        if is_dir:
            os.close(os.open(f"{name}/probe", os.O_CREAT | os.O_WRONLY, dir_fd=arena))
        got = as_user(cred, kernel_access, arena, name, is_dir)
        assert isinstance(got, dict)
        full = (stat.S_IFDIR if is_dir else stat.S_IFREG) | mode
        expected = {f"access{w}": may_access(cred, full, uid, gid, w) for w in range(1, 8)}
        expected["read"] = may_access(cred, full, uid, gid, R_OK)
        if is_dir:
            expected["search"] = may_access(cred, full, uid, gid, X_OK)
        else:
            expected["write"] = may_access(cred, full, uid, gid, W_OK)
        assert got == expected, (i, cred, oct(full), uid, gid)


@needs_root
def test_may_delete_matches_the_kernel(arena: int) -> None:
    rng = random.Random(5)
    for i in range(N_CASES):
        dir_mode = rng.choice([0, 0o1000]) | rng.randrange(0o1000)
        dir_uid, dir_gid, file_uid = rng.choice(UIDS), rng.choice(GIDS), rng.choice(UIDS)
        cred = random_cred(rng)
        name = f"d{i}"
        make(arena, name, True, dir_mode, dir_uid, dir_gid)
        os.close(os.open(f"{name}/victim", os.O_CREAT | os.O_WRONLY, dir_fd=arena))
        os.chown(f"{name}/victim", file_uid, 0, dir_fd=arena)
        got = as_user(cred, errno_of, partial(os.unlink, f"{name}/victim", dir_fd=arena))
        full = stat.S_IFDIR | dir_mode
        try:
            check_delete(cred, full, dir_uid, dir_gid, file_uid, "victim")
            expected = 0
        except OSError as e:
            expected = e.errno or -1
        assert got == expected, (i, cred, oct(dir_mode), dir_uid, dir_gid, file_uid)
        assert (got == 0) is may_delete(cred, full, dir_uid, dir_gid, file_uid)


@needs_root
def test_may_chown_matches_the_kernel(arena: int) -> None:
    rng = random.Random(6)
    for i in range(N_CASES):
        uid, gid = rng.choice(UIDS), rng.choice(GIDS)
        new_uid = rng.choice([None, *UIDS])
        new_gid = rng.choice([*GIDS] if new_uid is None else [None, *GIDS])
        cred = random_cred(rng)
        name = f"c{i}"
        make(arena, name, False, 0o644, uid, gid)
        ids = (-1 if new_uid is None else new_uid, -1 if new_gid is None else new_gid)
        got = as_user(cred, errno_of, partial(os.chown, name, *ids, dir_fd=arena))
        expected = 0 if may_chown(cred, uid, gid, new_uid, new_gid) else errno.EPERM
        assert got == expected, (i, cred, uid, gid, new_uid, new_gid)


@needs_root
def test_chmod_rules_match_the_kernel(arena: int) -> None:
    rng = random.Random(7)
    for i in range(N_CASES):
        is_dir = rng.random() < 0.3
        uid, gid = rng.choice(UIDS), rng.choice(GIDS)
        new = rng.randrange(0o10000) | rng.choice([0, stat.S_ISGID])
        cred = random_cred(rng)
        name = f"m{i}"
        make(arena, name, is_dir, 0o644, uid, gid)
        got = as_user(cred, errno_of, partial(os.chmod, name, new, dir_fd=arena))
        assert got == (0 if may_chmod(cred, uid) else errno.EPERM), (i, cred, uid)
        if got == 0:
            kind = stat.S_IFDIR if is_dir else stat.S_IFREG
            after = os.stat(name, dir_fd=arena).st_mode
            assert after == chmod_mode(cred, kind | new, gid), (i, cred, oct(new), gid)


@needs_root
def test_new_object_rules_match_the_kernel(arena: int) -> None:
    rng = random.Random(8)
    # every branch: setgid parent or not, directory or file, asking setgid with group
    # execute or not, the creator root, in the parent's group or not; other bits random
    branches = list(itertools.product([0, stat.S_ISGID], [True, False], [0, 0o2010], range(3)))
    for i, (setgid, is_dir, sgid_gx, who) in enumerate(branches * 2):
        parent_mode, parent_gid = 0o777 | setgid, rng.choice(GIDS)
        # mkdir ignores setuid and setgid in its mode argument; open keeps them
        mode = rng.randrange(0o2000 if is_dir else 0o10000) | (0 if is_dir else sgid_gx)
        others = [g for g in GIDS if g != parent_gid]
        gid = rng.choice(others)
        gids = {gid, *rng.sample(others, rng.randint(0, 2))} | ({parent_gid} if who == 1 else set())
        cred = ROOT if who == 0 else Cred(rng.choice(UIDS[1:]), gid, frozenset(gids))
        parent = f"p{i}"
        make(arena, parent, True, parent_mode, 0, parent_gid)
        child = f"{parent}/new"
        as_user(cred, create, arena, child, is_dir, mode)
        got = os.stat(child, dir_fd=arena)
        kind = stat.S_IFDIR if is_dir else stat.S_IFREG
        full_parent = stat.S_IFDIR | parent_mode
        assert got.st_gid == new_file_gid(full_parent, parent_gid, cred.gid), (i, cred)
        expected = new_mode(cred, full_parent, parent_gid, kind | mode)
        assert got.st_mode == expected, (i, cred, oct(parent_mode), parent_gid, oct(mode))


def _protected_hardlinks() -> bool:
    with open("/proc/sys/fs/protected_hardlinks") as f:
        return f.read().strip() == "1"


@needs_root
def test_may_link_matches_the_kernel(arena: int) -> None:
    if not _protected_hardlinks():
        pytest.skip("fs.protected_hardlinks is off on this host: the kernel has no rule")
    rng = random.Random(9)
    for i in range(N_CASES * 2):
        uid, gid = rng.choice(UIDS), rng.choice(GIDS)
        special = rng.choice([0, 0, stat.S_ISUID, stat.S_ISGID, stat.S_ISGID | stat.S_IXGRP])
        mode = rng.randrange(0o1000) | special
        cred = random_cred(rng)
        name = f"l{i}"
        make(arena, name, False, mode, uid, gid)
        got = as_user(cred, errno_of, partial(os.link, name, f"{name}.link", src_dir_fd=arena,
                                              dst_dir_fd=arena))  # fmt: skip
        expected = 0 if may_link(cred, stat.S_IFREG | mode, uid, gid) else errno.EPERM
        assert got == expected, (i, cred, oct(mode), uid, gid)


@needs_root
def test_chown_mode_matches_the_kernel(arena: int) -> None:
    rng = random.Random(10)
    for i in range(N_CASES):
        is_dir = rng.random() < 0.3
        mode = rng.randrange(0o10000)
        name = f"k{i}"
        make(arena, name, is_dir, mode, 1000, 1000)
        os.chown(name, rng.choice(UIDS), rng.choice(GIDS), dir_fd=arena)
        after = os.stat(name, dir_fd=arena).st_mode
        kind = stat.S_IFDIR if is_dir else stat.S_IFREG
        assert after == chown_mode(kind | mode), (i, oct(mode))


def write_or_truncate(arena: int, name: str, truncate: bool) -> None:
    """Write a byte to `name`, or truncate it to 1 byte, as the current process."""
    if truncate:
        os.truncate(f"/proc/self/fd/{arena}/{name}", 1)
        return
    fd = os.open(name, os.O_WRONLY, dir_fd=arena)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


@needs_root
def test_kill_privs_matches_the_kernel(arena: int) -> None:
    rng = random.Random(11)
    for i in range(N_CASES * 2):
        special = rng.choice([stat.S_ISUID, stat.S_ISGID, stat.S_ISUID | stat.S_ISGID, 0])
        mode = rng.randrange(0o1000) | 0o222 | special  # anyone may write it
        gid, truncate = rng.choice(GIDS), rng.random() < 0.5
        cred = ROOT if i % 7 == 0 else random_cred(rng)
        name = f"w{i}"
        make(arena, name, False, mode, rng.choice(UIDS), gid)
        as_user(cred, write_or_truncate, arena, name, truncate)
        after = os.stat(name, dir_fd=arena).st_mode
        assert after == kill_privs(cred, REG | mode, gid), (i, cred, oct(mode), gid, truncate)


@needs_root
def test_may_mknod_matches_the_kernel(arena: int) -> None:
    kinds = [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFREG]
    devices = [os.makedev(1, 1), os.makedev(0, 0), os.makedev(8, 1)]
    for i, (kind, rdev, cred) in enumerate(itertools.product(kinds, devices, [ROOT, BOB])):
        name = f"n{i}"
        make_it = partial(os.mknod, name, kind | 0o600, rdev, dir_fd=arena)
        got = as_user(cred, errno_of, make_it)
        assert got == (0 if may_mknod(cred, kind | 0o600, rdev) else errno.EPERM), (i, cred)
        assert os.path.lexists(f"/proc/self/fd/{arena}/{name}") is (got == 0)
