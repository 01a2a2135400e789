"""Opening a Node's object for I/O (Tlopen): its `VolHandle` (`volfs.handle`)."""

from __future__ import annotations

import errno
import os
import stat

from ninep.backend import Handle
from ninep.constants import OpenFlag
from ninep.convert import writes_data
from ninep.messages import Qid

from .handle import VolHandle
from .hostio import INLINE_FREE_MAX, host_open_flags, proc_path
from .node_base import NodeBase, operation
from .policy import is_special


class Opening(NodeBase):
    """The File's `open`."""

    @operation
    async def open(self, flags: int) -> Handle:
        st = self._stat()
        shown = self._view(st)
        if stat.S_ISLNK(shown.mode):
            raise OSError(errno.ELOOP, "a symlink cannot be opened")
        if stat.S_ISREG(st.st_mode) and is_special(shown):
            raise OSError(errno.ENXIO, "a special file is opened by the client, not the server")
        self._policy.check_open(shown, flags)
        self._opened_for_write = writes_data(flags)
        regular, is_dir = stat.S_ISREG(st.st_mode), stat.S_ISDIR(st.st_mode)
        guard = self._policy.write_guard() if regular else None
        if guard is not None and flags & OpenFlag.TRUNC:
            guard(self._fd)  # O_TRUNC truncates: as a write, it drops setuid and setgid
        host_flags = host_open_flags(flags)
        if stat.S_ISFIFO(st.st_mode):
            host_flags |= os.O_NONBLOCK  # else opening waits for the other end
        path, descriptors = proc_path(self._fd), self._descriptors
        dots = (self._qid, self._parent_qid()) if is_dir else None
        with descriptors.opening():
            if (regular or is_dir) and not flags & OpenFlag.TRUNC:
                fd = os.open(path, host_flags)
            else:  # O_TRUNC frees the data; other files may wait for a device or a peer
                cheap = regular and st.st_size <= INLINE_FREE_MAX
                fd = await self._tree.calls.run(cheap, os.open, path, host_flags)
        return VolHandle(
            fd,
            calls=self._tree.calls,
            mode=st.st_mode,
            dots=dots,
            show=self._names.shown,
            stored_types=self._policy.stored_types,
            hidden=self._names.hidden(self._is_root),
            before_write=guard,
            closed=descriptors.handle_closed,
        )

    def _parent_qid(self) -> Qid:
        parent = self._entry.parent
        return self._qid if parent is None else self._entry_qid(parent)
