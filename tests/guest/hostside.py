"""Host side of the guest tests: inputs put in the export before boot, and a view
of the export directory afterwards that understands how the servers store metadata.

diod stores POSIX metadata natively; the project's volfs export may keep it in
``user.virtfs.*`` xattrs the way QEMU's ``security_model=mapped-xattr`` does
(a symlink is then a regular host file holding the target).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import stat
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

#: Fixed mtime for the tar input (2001-09-09T01:46:40Z).
TAR_MTIME = 1_000_000_000

_VIRTFS = "user.virtfs."


def _getxattr(path: Path, name: str) -> bytes | None:
    """Return an xattr of ``path`` (not following symlinks), or None if absent."""
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


class HostView:
    """Read guest-visible metadata of an export directory on the host.

    Metadata in ``user.virtfs.*`` xattrs (volfs's mapped-xattr format, see
    DESIGN.md) wins where present; otherwise the host's own metadata is what the
    guest sees (diod, or a volfs without mapped metadata).
    """

    def mode(self, path: Path) -> int:
        """The full st_mode the guest sees."""
        raw = _getxattr(path, _VIRTFS + "mode")
        if raw is not None:
            return int.from_bytes(raw[:4], "little")
        return os.lstat(path).st_mode

    def owner(self, path: Path) -> tuple[int, int]:
        """(uid, gid) as the guest sees them."""
        st = os.lstat(path)
        uid = _getxattr(path, _VIRTFS + "uid")
        gid = _getxattr(path, _VIRTFS + "gid")
        return (
            int.from_bytes(uid[:4], "little") if uid is not None else st.st_uid,
            int.from_bytes(gid[:4], "little") if gid is not None else st.st_gid,
        )

    def is_symlink(self, path: Path) -> bool:
        """Whether the guest sees a symbolic link."""
        return stat.S_ISLNK(self.mode(path))

    def readlink(self, path: Path) -> str:
        """The target of a symlink as the guest sees it."""
        if path.is_symlink():
            return os.readlink(path)
        return path.read_bytes().decode()  # mapped-xattr: a regular file holding the target

    def user_xattr(self, path: Path, name: str) -> bytes | None:
        """A guest-set user xattr, as stored on the host (None if absent)."""
        return _getxattr(path, name)


def host_git(repo: Path, *args: str) -> str:
    """Run the host's git in `repo`; assert it succeeds and return its output."""
    proc = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TarMember:
    """What the archive holds at one path."""

    kind: str  # "file", "dir", "symlink" or "hardlink"
    mode: int = 0o644
    data: bytes = b""
    target: str = ""


def tar_members(seed: int = 1234) -> dict[str, TarMember]:
    """The deterministic contents of the tar input (sizes around buffer edges, modes,
    nested directories, a symlink, a hard link, names with spaces and non-ASCII)."""
    rng = random.Random(seed)
    members: dict[str, TarMember] = {
        "top": TarMember("dir", 0o755),
        "top/empty": TarMember("file", 0o644, b""),
        "top/one-byte": TarMember("file", 0o644, b"x"),
        "top/private": TarMember("dir", 0o700),
        "top/private/secret": TarMember("file", 0o600, b"secret\n"),
        "top/bin": TarMember("dir", 0o755),
        "top/bin/tool.sh": TarMember("file", 0o755, b"#!/bin/sh\necho tool\n"),
        "top/with space and ünïcødé.txt": TarMember("file", 0o644, "naïve café\n".encode()),
        "top/link-to-secret": TarMember("symlink", 0o777, target="private/secret"),
        "top/deep": TarMember("dir", 0o755),
        "top/deep/a": TarMember("dir", 0o755),
        "top/deep/a/b": TarMember("dir", 0o755),
        "top/deep/a/b/c": TarMember("dir", 0o750),
    }
    for size in (4095, 4096, 4097, 65535, 65536, 65537, 1_048_577, 1_572_864):
        members[f"top/sized/{size}.bin"] = TarMember("file", 0o644, rng.randbytes(size))
    members["top/sized"] = TarMember("dir", 0o755)
    for i in range(60):
        members[f"top/deep/a/b/c/small-{i:02d}.txt"] = TarMember(
            "file", 0o644, f"small file {i}\n".encode() * (i + 1)
        )
    members["top/deep/hard-original"] = TarMember("file", 0o640, b"shared by two names\n")
    members["top/deep/hard-second"] = TarMember("hardlink", 0o640, target="top/deep/hard-original")
    return members


def build_tar(members: dict[str, TarMember]) -> bytes:
    """Pack ``members`` as a GNU tar archive (owner root, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(members):
            member = members[name]
            info = tarfile.TarInfo(name)
            info.mode = member.mode
            info.mtime = TAR_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if member.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif member.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = member.target
                tar.addfile(info)
            elif member.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = member.target
                tar.addfile(info)
            else:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
    return buf.getvalue()


def compare_untarred(root: Path, members: dict[str, TarMember], view: HostView) -> list[str]:
    """Compare an unpacked tree on the host with ``members``; return the differences."""
    problems: list[str] = []
    found = {str(p.relative_to(root)) for p in root.rglob("*")}
    if missing := sorted(set(members) - found):
        problems.append(f"missing: {missing[:10]}")
    if extra := sorted(found - set(members)):
        problems.append(f"unexpected: {extra[:10]}")
    for name, member in sorted(members.items()):
        path = root / name
        if name not in found:
            continue
        mode = view.mode(path)
        if member.kind == "dir":
            if not stat.S_ISDIR(mode):
                problems.append(f"{name}: not a directory (mode {mode:o})")
        elif member.kind == "symlink":
            if not stat.S_ISLNK(mode):
                problems.append(f"{name}: not a symlink (mode {mode:o})")
            elif (target := view.readlink(path)) != member.target:
                problems.append(f"{name}: symlink to {target!r}, want {member.target!r}")
            continue
        else:
            if not stat.S_ISREG(mode):
                problems.append(f"{name}: not a regular file (mode {mode:o})")
                continue
            want = members[member.target].data if member.kind == "hardlink" else member.data
            if path.read_bytes() != want:
                problems.append(f"{name}: contents differ")
            if member.kind == "hardlink":
                first = root / member.target
                if os.lstat(path).st_ino != os.lstat(first).st_ino:
                    problems.append(f"{name}: not a hard link of {member.target}")
        if stat.S_IMODE(mode) != member.mode:
            problems.append(f"{name}: mode {stat.S_IMODE(mode):o}, want {member.mode:o}")
        if int(os.lstat(path).st_mtime) != TAR_MTIME:
            problems.append(f"{name}: mtime {os.lstat(path).st_mtime}, want {TAR_MTIME}")
    return problems
