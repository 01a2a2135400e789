"""Changing a Node's attributes (Tsetattr): mode and owner by the policy, size and times.

The attach's policy checks the request and makes its chmod and chown
(`Policy.chmod_chown`: stored attributes, or WSL's read-only bit); the size
and the times go to the host here.
"""

from __future__ import annotations

import os
import time

from ninep.backend import SetAttr
from ninep.constants import SetattrMask
from ninep.convert import time_ns

from .hostio import INLINE_FREE_MAX, bad_values_are_einval, proc_path
from .node_base import NodeBase, operation


class Setting(NodeBase):
    """The File's setattr."""

    @operation
    async def setattr(self, attr: SetAttr) -> None:
        path = proc_path(self._fd)
        valid = self._policy.chmod_chown(self._live(), attr, self._opened_for_write)
        with bad_values_are_einval():
            if valid & SetattrMask.SIZE:
                size = self._stat().st_size
                cheap = size <= INLINE_FREE_MAX or attr.size >= size  # frees little, or grows
                await self._tree.calls.run(cheap, os.truncate, path, attr.size)
            if valid & (SetattrMask.ATIME | SetattrMask.MTIME):
                self._set_times(path, attr)

    def _set_times(self, path: str, attr: SetAttr) -> None:
        """Atime and mtime: kept without their bit, given with their _SET bit, else now."""
        v, both = attr.valid, SetattrMask.ATIME | SetattrMask.MTIME
        if v & (both | SetattrMask.ATIME_SET | SetattrMask.MTIME_SET) == both:
            os.utime(path)  # both now, by the host's clock
            return
        st, now = self._stat(), time.time_ns()
        atime, mtime = st.st_atime_ns, st.st_mtime_ns
        if v & SetattrMask.ATIME:
            given = v & SetattrMask.ATIME_SET
            atime = time_ns(attr.atime_sec, attr.atime_nsec) if given else now
        if v & SetattrMask.MTIME:
            given = v & SetattrMask.MTIME_SET
            mtime = time_ns(attr.mtime_sec, attr.mtime_nsec) if given else now
        os.utime(path, ns=(atime, mtime))
