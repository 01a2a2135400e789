"""A small FUSE passthrough filesystem (pyfuse3 + trio), for tests that need a real host
filesystem with extended attributes but without O_TMPFILE.

FUSE through pyfuse3 has no tmpfile operation, so `open(dir, O_TMPFILE)` on the mount fails
(EOPNOTSUPP), while `user.*` and `trusted.*` xattrs pass through to the source directory.

    python -m tests.passthrough_fs SOURCE MOUNTPOINT

mounts SOURCE on MOUNTPOINT (fsname "passthrough") and serves until SIGTERM or SIGINT,
then unmounts. `mounted_passthrough()` does that as a subprocess for a test.

Modelled on pyfuse3's examples/passthroughfs.py. FUSE inode numbers are the host's (the
source directory itself is ROOT_INODE), so SOURCE should be one filesystem; each inode
maps to the host paths it is known by (several for hard links), kept up to date by the
operations made through the mount (not by changes made to SOURCE behind its back). Each
open is its own host file descriptor, the file handle. Nothing is cached by the kernel
(timeouts 0); "." and ".." are not listed by readdir.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pyfuse3
import trio
from pyfuse3 import (
    EntryAttributes,
    FileHandleT,
    FileInfo,
    FUSEError,
    InodeT,
    ReaddirToken,
    RequestContext,
    SetattrFields,
    StatvfsData,
)

from .drvfs_harness import is_mounted

XATTR_NAMESPACES = (b"user.", b"trusted.")
START_TIMEOUT = 60.0  # seconds for the mount to appear: a hang guard
STOP_TIMEOUT = 60.0  # seconds for the process to unmount and exit: a hang guard


@contextlib.contextmanager
def host_errors() -> Iterator[None]:
    """Turn an OSError from the host into the FUSEError that answers the request."""
    try:
        yield
    except OSError as e:
        raise FUSEError(e.errno or errno.EIO) from None


class Passthrough(pyfuse3.Operations):
    """The operations: every request done on the host, below `source`."""

    supports_dot_lookup = False  # no lookups of "." and ".." (only NFS export needs them)

    def __init__(self, source: str) -> None:
        super().__init__()
        self.root = os.fsencode(os.path.realpath(source))
        st = os.stat(self.root)
        self.root_id = (st.st_dev, st.st_ino)
        self.paths: dict[InodeT, set[bytes]] = {pyfuse3.ROOT_INODE: {self.root}}
        self.lookups: dict[InodeT, int] = {}  # the kernel's lookup count of each inode
        self.files: dict[int, InodeT] = {}  # open host fds (the file handles): their inode
        self.dirs: dict[int, tuple[bytes, list[bytes]]] = {}  # dir handle: path, listing
        self.next_dir = 1

    # --- inodes and paths

    def inode(self, st: os.stat_result) -> InodeT:
        return pyfuse3.ROOT_INODE if (st.st_dev, st.st_ino) == self.root_id else st.st_ino

    def path(self, inode: InodeT) -> bytes:
        paths = self.paths.get(inode)
        if not paths:
            raise FUSEError(errno.ENOENT)
        return min(paths)

    def target(self, inode: InodeT) -> bytes | int:
        """A host path of `inode`, or else an open fd of it (an unlinked open file)."""
        if self.paths.get(inode):
            return self.path(inode)
        for fd, ino in self.files.items():
            if ino == inode:
                return fd
        raise FUSEError(errno.ENOENT)

    def child(self, parent: InodeT, name: bytes) -> bytes:
        return os.path.join(self.path(parent), name)

    def remember(self, path: bytes, st: os.stat_result) -> EntryAttributes:
        """The kernel now knows the inode of `path` (once more): its attributes."""
        attr = self.attributes(st)
        self.paths.setdefault(attr.st_ino, set()).add(path)
        if attr.st_ino != pyfuse3.ROOT_INODE:
            self.lookups[attr.st_ino] = self.lookups.get(attr.st_ino, 0) + 1
        return attr

    def drop(self, path: bytes, st: os.stat_result) -> None:
        """`path` (whose attributes were `st`) is gone."""
        self.paths.get(self.inode(st), set()).discard(path)

    def moved(self, old: bytes, new: bytes) -> None:
        """`old` is now `new`, and so is everything below it."""
        for paths in self.paths.values():
            for p in [p for p in paths if p == old or p.startswith(old + b"/")]:
                paths.remove(p)
                paths.add(new + p[len(old) :])

    def attributes(self, st: os.stat_result) -> EntryAttributes:
        attr = EntryAttributes()
        attr.st_ino = self.inode(st)
        attr.generation = 0
        attr.entry_timeout = 0
        attr.attr_timeout = 0
        attr.st_mode = st.st_mode
        attr.st_nlink = st.st_nlink
        attr.st_uid = st.st_uid
        attr.st_gid = st.st_gid
        attr.st_rdev = st.st_rdev
        attr.st_size = st.st_size
        attr.st_blksize = st.st_blksize
        attr.st_blocks = st.st_blocks
        attr.st_atime_ns = st.st_atime_ns
        attr.st_mtime_ns = st.st_mtime_ns
        attr.st_ctime_ns = st.st_ctime_ns
        return attr

    def stat(self, inode: InodeT) -> os.stat_result:
        target = self.target(inode)
        with host_errors():
            return os.fstat(target) if isinstance(target, int) else os.lstat(target)

    def own(self, path: bytes, parent: bytes, ctx: RequestContext) -> os.stat_result:
        """Give the new `path` to the caller, as creating it themselves would have."""
        st = os.lstat(path)
        setgid_dir = os.stat(parent).st_mode & stat.S_ISGID
        gid = st.st_gid if setgid_dir else ctx.gid
        if (st.st_uid, st.st_gid) == (ctx.uid, gid):
            return st
        os.chown(path, ctx.uid, gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o7000:
            os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits
        return os.lstat(path)

    # --- lookups and attributes

    async def lookup(
        self, parent_inode: InodeT, name: bytes, ctx: RequestContext
    ) -> EntryAttributes:
        path = self.child(parent_inode, name)
        with host_errors():
            return self.remember(path, os.lstat(path))

    async def forget(self, inode_list: Sequence[tuple[InodeT, int]]) -> None:
        for inode, count in inode_list:
            left = self.lookups.pop(inode, 0) - count
            if left > 0:
                self.lookups[inode] = left
            elif inode != pyfuse3.ROOT_INODE:
                self.paths.pop(inode, None)

    async def getattr(self, inode: InodeT, ctx: RequestContext) -> EntryAttributes:
        return self.attributes(self.stat(inode))

    async def setattr(
        self,
        inode: InodeT,
        attr: EntryAttributes,
        fields: SetattrFields,
        fh: FileHandleT | None,
        ctx: RequestContext,
    ) -> EntryAttributes:
        target = self.target(inode)
        follow = isinstance(target, int)  # an fd: follow_symlinks=False is not allowed
        with host_errors():
            if fields.update_size:
                if fh is not None and fh in self.files:
                    os.ftruncate(fh, attr.st_size)  # the caller's own open file
                else:
                    os.truncate(target, attr.st_size)
            if fields.update_mode:  # never a symlink: chmod follows them
                os.chmod(target, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                uid = attr.st_uid if fields.update_uid else -1
                gid = attr.st_gid if fields.update_gid else -1
                os.chown(target, uid, gid, follow_symlinks=follow)
            if fields.update_atime or fields.update_mtime:
                old = self.stat(inode)
                atime = attr.st_atime_ns if fields.update_atime else old.st_atime_ns
                mtime = attr.st_mtime_ns if fields.update_mtime else old.st_mtime_ns
                os.utime(target, ns=(atime, mtime), follow_symlinks=follow)
        return self.attributes(self.stat(inode))

    async def readlink(self, inode: InodeT, ctx: RequestContext) -> bytes:
        with host_errors():
            return os.readlink(self.path(inode))

    async def statfs(self, ctx: RequestContext) -> StatvfsData:
        with host_errors():
            st = os.statvfs(self.root)
        data = StatvfsData()
        data.f_bsize = st.f_bsize
        data.f_frsize = st.f_frsize
        data.f_blocks = st.f_blocks
        data.f_bfree = st.f_bfree
        data.f_bavail = st.f_bavail
        data.f_files = st.f_files
        data.f_ffree = st.f_ffree
        data.f_favail = st.f_favail
        data.f_namemax = st.f_namemax
        return data

    # --- directories

    async def opendir(self, inode: InodeT, ctx: RequestContext) -> FileHandleT:
        path = self.path(inode)
        handle, self.next_dir = self.next_dir, self.next_dir + 1
        self.dirs[handle] = (path, [])
        return handle

    async def readdir(self, fh: FileHandleT, start_id: int, token: ReaddirToken) -> None:
        path, names = self.dirs[fh]
        if start_id == 0:  # (re)start: a fresh listing, kept for the calls that continue it
            with host_errors():
                names[:] = sorted(os.listdir(path))
        for index in range(start_id, len(names)):
            entry = os.path.join(path, names[index])
            try:
                st = os.lstat(entry)
            except FileNotFoundError:
                continue  # removed since the listing
            except OSError as e:
                raise FUSEError(e.errno or errno.EIO) from None
            if not pyfuse3.readdir_reply(token, names[index], self.attributes(st), index + 1):
                return
            self.remember(entry, st)  # readdirplus counts as a lookup

    async def releasedir(self, fh: FileHandleT) -> None:
        del self.dirs[fh]

    async def mkdir(
        self, parent_inode: InodeT, name: bytes, mode: int, ctx: RequestContext
    ) -> EntryAttributes:
        perm = stat.S_IMODE(mode) & ~ctx.umask
        return self.make(parent_inode, name, ctx, lambda p: os.mkdir(p, perm))

    async def rmdir(self, parent_inode: InodeT, name: bytes, ctx: RequestContext) -> None:
        path = self.child(parent_inode, name)
        with host_errors():
            st = os.lstat(path)
            os.rmdir(path)
        self.drop(path, st)

    # --- names

    async def mknod(
        self, parent_inode: InodeT, name: bytes, mode: int, rdev: int, ctx: RequestContext
    ) -> EntryAttributes:
        return self.make(parent_inode, name, ctx, lambda p: os.mknod(p, mode & ~ctx.umask, rdev))

    async def symlink(
        self, parent_inode: InodeT, name: bytes, target: bytes, ctx: RequestContext
    ) -> EntryAttributes:
        return self.make(parent_inode, name, ctx, lambda p: os.symlink(target, p))

    def make(
        self, parent_inode: InodeT, name: bytes, ctx: RequestContext, maker: Callable[[bytes], None]
    ) -> EntryAttributes:
        """Make entry `name` of `parent_inode` with `maker(path)`, owned by the caller."""
        parent = self.path(parent_inode)
        path = os.path.join(parent, name)
        with host_errors():
            maker(path)
            return self.remember(path, self.own(path, parent, ctx))

    async def link(
        self, inode: InodeT, new_parent_inode: InodeT, new_name: bytes, ctx: RequestContext
    ) -> EntryAttributes:
        path = self.child(new_parent_inode, new_name)
        with host_errors():
            os.link(self.path(inode), path, follow_symlinks=False)
            return self.remember(path, os.lstat(path))

    async def unlink(self, parent_inode: InodeT, name: bytes, ctx: RequestContext) -> None:
        path = self.child(parent_inode, name)
        with host_errors():
            st = os.lstat(path)
            os.unlink(path)
        self.drop(path, st)

    async def rename(
        self,
        parent_inode_old: InodeT,
        name_old: bytes,
        parent_inode_new: InodeT,
        name_new: bytes,
        flags: int,
        ctx: RequestContext,
    ) -> None:
        if flags != 0:  # RENAME_NOREPLACE, RENAME_EXCHANGE: not supported
            raise FUSEError(errno.EINVAL)
        old = self.child(parent_inode_old, name_old)
        new = self.child(parent_inode_new, name_new)
        with host_errors():
            moved = os.lstat(old)
            try:
                replaced: os.stat_result | None = os.lstat(new)
            except FileNotFoundError:
                replaced = None
            os.rename(old, new)
        if replaced is not None and self.inode(replaced) == self.inode(moved):
            return  # two links of one file: rename does nothing
        if replaced is not None:
            self.drop(new, replaced)
        self.moved(old, new)

    # --- files

    async def open(self, inode: InodeT, flags: int, ctx: RequestContext) -> FileInfo:
        with host_errors():
            fd = os.open(self.path(inode), flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY))
        self.files[fd] = inode
        return FileInfo(fh=fd)

    async def create(
        self, parent_inode: InodeT, name: bytes, mode: int, flags: int, ctx: RequestContext
    ) -> tuple[FileInfo, EntryAttributes]:
        parent = self.path(parent_inode)
        path = os.path.join(parent, name)
        with host_errors():
            fd = os.open(path, (flags | os.O_CREAT) & ~os.O_NOCTTY, stat.S_IMODE(mode) & ~ctx.umask)
            try:
                attr = self.remember(path, self.own(path, parent, ctx))
            except BaseException:
                os.close(fd)
                raise
        self.files[fd] = attr.st_ino
        return FileInfo(fh=fd), attr

    async def read(self, fh: FileHandleT, off: int, size: int) -> bytes:
        with host_errors():
            return os.pread(fh, size, off)

    async def write(self, fh: FileHandleT, off: int, buf: bytes) -> int:
        with host_errors():
            return os.pwrite(fh, buf, off)

    async def flush(self, fh: FileHandleT) -> None:
        pass  # writes went straight to the host fd

    async def fsync(self, fh: FileHandleT, datasync: bool) -> None:
        with host_errors():
            (os.fdatasync if datasync else os.fsync)(fh)

    async def release(self, fh: FileHandleT) -> None:
        del self.files[fh]
        with host_errors():
            os.close(fh)

    # --- extended attributes: the user and trusted namespaces only

    def xattr_target(self, inode: InodeT, name: bytes | None = None) -> bytes | int:
        if name is not None and not name.startswith(XATTR_NAMESPACES):
            raise FUSEError(errno.EOPNOTSUPP)
        return self.target(inode)

    async def getxattr(self, inode: InodeT, name: bytes, ctx: RequestContext) -> bytes:
        target = self.xattr_target(inode, name)
        with host_errors():
            return os.getxattr(target, name, follow_symlinks=isinstance(target, int))

    async def setxattr(self, inode: InodeT, name: bytes, value: bytes, ctx: RequestContext) -> None:
        target = self.xattr_target(inode, name)
        with host_errors():
            os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))

    async def listxattr(self, inode: InodeT, ctx: RequestContext) -> Sequence[bytes]:
        target = self.xattr_target(inode)
        with host_errors():
            names = os.listxattr(target, follow_symlinks=isinstance(target, int))
        return [n for n in map(os.fsencode, names) if n.startswith(XATTR_NAMESPACES)]

    async def removexattr(self, inode: InodeT, name: bytes, ctx: RequestContext) -> None:
        target = self.xattr_target(inode, name)
        with host_errors():
            os.removexattr(target, name, follow_symlinks=isinstance(target, int))


# --- the process


async def serve(operations: pyfuse3.Operations, fsname: str, mountpoint: str) -> None:
    """Mount, serve until SIGTERM or SIGINT (or an unmount), unmount."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        pyfuse3.init(operations, mountpoint, {f"fsname={fsname}", "default_permissions"})
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(terminate_on_signal, signals)
                await pyfuse3.main()
                nursery.cancel_scope.cancel()
        finally:
            pyfuse3.close(unmount=True)


async def terminate_on_signal(signals: AsyncIterator[int]) -> None:
    async for _ in signals:
        pyfuse3.terminate()
        return


def main_of(
    make: Callable[[str], pyfuse3.Operations], fsname: str
) -> Callable[[Sequence[str]], int]:
    """The `main(argv)` of a test file system: `make(SOURCE)` served on MOUNTPOINT."""

    def main(argv: Sequence[str]) -> int:
        if len(argv) != 2:
            print(f"usage: python -m {make.__module__} SOURCE MOUNTPOINT", file=sys.stderr)
            return 2
        logging.basicConfig(level=logging.WARNING)  # pyfuse3 logs its errors
        os.umask(0)  # modes arrive with the caller's umask applied
        trio.run(serve, make(argv[0]), fsname, os.path.realpath(argv[1]))
        return 0

    return main


main = main_of(Passthrough, "passthrough")


# --- the test helper


@contextlib.contextmanager
def mounted_fs(module: str, source: Path, mountpoint: Path) -> Iterator[Path]:
    """`source` mounted on `mountpoint` by a `python -m MODULE` subprocess (a test file
    system: tests.passthrough_fs, tests.taskfs).

    Yields the mountpoint once the mount is in mountinfo. On exit the process is
    stopped (SIGTERM: it unmounts) and the mount is gone, whatever happened;
    raises, with the process's stderr, if it did not mount or did not end cleanly.
    """
    repo = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", module]
    command += [str(source.resolve()), str(mountpoint.resolve())]
    with tempfile.TemporaryFile() as stderr:

        def log() -> str:
            stderr.seek(0)
            return stderr.read().decode(errors="replace")

        proc = subprocess.Popen(command, cwd=repo, stdin=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not is_mounted(mountpoint):
                if proc.poll() is not None:
                    raise RuntimeError(f"{module} exited ({proc.returncode}):\n{log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{module} did not mount in time:\n{log()}")
                time.sleep(0.02)
            yield mountpoint
        finally:
            code = _stop(proc, mountpoint)
        if code != 0:
            raise RuntimeError(f"{module} ended with {code}:\n{log()}")


mounted_passthrough = functools.partial(mounted_fs, "tests.passthrough_fs")


def _stop(proc: subprocess.Popen[bytes], mountpoint: Path) -> int:
    """SIGTERM `proc` and wait (SIGKILL if it hangs); a lazy unmount if still mounted."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
    if is_mounted(mountpoint):
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
