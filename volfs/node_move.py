"""Taking names away in a Node's directory: rename, renameat, unlinkat and remove.

Where a new name is another entry's in another case, that entry is replaced
(`Moving._move`); the folded indexes follow each change (`Names.moving`,
`Names.changing`), and so do the live entries (`Entry.renamed`, `forget`).
"""

from __future__ import annotations

import errno
import os
import stat
from functools import partial

from ninep.backend import File
from ninep.constants import AT_REMOVEDIR

from .descriptors import Entry, ident_of
from .hostio import INLINE_FREE_MAX, HostCalls
from .node_base import NodeBase, operation


class Moving(NodeBase):
    """The File's rename, renameat, unlinkat and remove."""

    @operation
    async def rename(self, newdir: File, newname: str) -> None:
        dest = self._peer(newdir)
        parent, host = self._where()
        moved = await self._move(parent, host, dest, newname)
        if moved is not None:
            self._live().move(dest._live(), moved)

    @operation
    async def renameat(self, oldname: str, newdir: File, newname: str) -> None:
        dest = self._peer(newdir)
        host = await self._names.existing(self._fd, oldname, self._is_root)
        await self._move(self._live(), host, dest, newname)

    async def _move(self, src_dir: Entry, src: str, dest: NodeBase, newname: str) -> str | None:
        """Rename entry (host name) `src` of directory `src_dir` to `newname` in `dest`.

        Where `newname` names another entry in another case, that entry is
        replaced (as POSIX rename replaces its target, with the same checks)
        and the result takes the case of `newname`; where it names `src`
        itself, only the case changes. Returns the new host name, or None if
        nothing moved (both names are links to one file, as in POSIX). The entries of
        the names follow (`Entry.renamed`).
        """
        names, src_dirfd = self._names, src_dir.fd
        new = names.new_host(newname, dest._is_root)
        target = await names.find(dest._fd, newname, dest._is_root)
        src_st, dest_st = os.stat(src_dirfd), os.stat(dest._fd)
        same_dir = (src_st.st_dev, src_st.st_ino) == (dest_st.st_dev, dest_st.st_ino)
        itself = same_dir and target == src
        self._policy.check_move(src_dirfd, src, dest._live(), None if itself else target)
        moving = os.stat(src, dir_fd=src_dirfd, follow_symlinks=False)
        if target is not None and not itself:
            b = os.stat(target, dir_fd=dest._fd, follow_symlinks=False)
            if ident_of(moving) == ident_of(b):
                return None
        with names.moving(src_dirfd, dest._fd, same_dir) as (out, into):
            if target is None or target == new or itself:
                os.rename(src, new, src_dir_fd=src_dirfd, dst_dir_fd=dest._fd)
                out.removed.append(src)
            else:
                os.rename(src, target, src_dir_fd=src_dirfd, dst_dir_fd=dest._fd)
                out.removed.append(src)
                os.rename(target, new, src_dir_fd=dest._fd, dst_dir_fd=dest._fd)
                into.removed.append(target)
                dest._live().forget(target)
            into.added.append(new)
        src_dir.renamed(src, moving, dest._live(), new)
        return new

    @operation
    async def unlinkat(self, name: str, flags: int) -> None:
        if flags & ~AT_REMOVEDIR:
            raise OSError(errno.EINVAL, f"unknown unlinkat flags {flags:#x}")
        host = await self._names.existing(self._fd, name, self._is_root)
        self._policy.check_unlink(self._fd, host)
        with self._names.changing(self._fd) as change:
            await self._unlink(self._fd, host, bool(flags & AT_REMOVEDIR), self._tree.calls)
            change.removed.append(host)
        self._live().forget(host)

    @operation
    async def remove(self) -> None:
        parent, host = self._where()
        is_dir = stat.S_ISDIR(self._stat().st_mode)
        self._policy.check_unlink(parent.fd, host)
        with self._names.changing(parent.fd) as change:
            await self._unlink(parent.fd, host, is_dir, self._tree.calls)
            change.removed.append(host)
        parent.forget(host)

    @staticmethod
    async def _unlink(dirfd: int, host: str, is_dir: bool, calls: HostCalls) -> None:
        if is_dir:
            os.rmdir(host, dir_fd=dirfd)
            return
        cheap = calls.local and os.stat(host, dir_fd=dirfd, follow_symlinks=False).st_size <= (
            INLINE_FREE_MAX
        )  # unlinking the last name frees the data
        await calls.run(cheap, partial(os.unlink, host, dir_fd=dirfd))
