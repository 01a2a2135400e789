"""The server's one gate per rule, before any handler: names, and read-only attaches.

Each request is checked here by its declared traits (`ninep.traits`), once, so a
backend can trust what it is given (`ninep.backend`): every name it is to make,
remove or rename passes `check_new_name`, every name it is to walk `check_name`,
and no change reaches it through a read-only attach (EROFS, as QEMU's 9p server
answers it, before the backend is asked).
"""

from __future__ import annotations

import errno

from .constants import MAXWELEM
from .convert import check_name, check_new_name
from .fids import FidTable
from .messages import Message


async def admit(msg: Message, fids: FidTable) -> None:
    """Refuse `msg` (OSError) if a name it carries is invalid or it would change an object
    of a read-only attach; a refused request that frees a fid still frees it."""
    traits = msg.traits
    try:
        if traits.walks is not None:
            walked: list[str] = getattr(msg, traits.walks)
            if len(walked) > MAXWELEM:
                raise OSError(errno.EINVAL, f"walk of {len(walked)} names; at most {MAXWELEM}")
            for name in walked:
                check_name(name)
        for field in traits.names:
            check_new_name(getattr(msg, field))
        if traits.modifies and (traits.modifies_if is None or traits.modifies_if(msg)):
            for field in traits.modifies:
                fid = fids.get(getattr(msg, field))  # unknown: the handler answers EBADF
                if fid is not None and fid.read_only:
                    raise OSError(errno.EROFS, "read-only attach")
    except OSError:
        if traits.frees is not None:
            await fids.release(getattr(msg, traits.frees))
        raise
