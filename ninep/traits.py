"""What a message does besides its fields, declared once on its class (`@message(...)`).

The session schedules by these traits, the server's gate (`ninep.gate`) checks
names and read-only attaches by them before any handler runs, and the client
counts its fids by them: adding a message is declaring its class, its handler and
its client method (docs/architecture.md, "Adding a message").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .constants import NOFID, OpenFlag
from .convert import writes_data


@dataclass(frozen=True, slots=True)
class Traits:
    """One message type's traits (the defaults: a plain message that does none of this)."""

    #: the set of this project's extensions that has it (0: 9P2000.L's own); answered
    #: EOPNOTSUPP on a connection that did not negotiate that set
    extension: int = 0
    #: waits for changes (Tnotify): outside the bounds of work in flight, on both sides
    waits: bool = False
    #: served in the connection's own task, one after the other (a backend answers it from
    #: what it holds or one quick host call)
    quick: bool = False
    #: the field that carries bulk data (bytes) or asks for it (a count): past `limits.BIG`
    #: a request is big; a reply's is its last field, sent where it lies
    bulk: str | None = None
    #: the fids whose objects it changes, first the directory of each of its `names` in
    #: their order (what it changes there is marked as the connection's own): refused
    #: EROFS, before any handler, where the fid's attach is read-only ...
    modifies: tuple[str, ...] = ()
    #: ... when this says so of the message (None: always)
    modifies_if: Callable[[Any], bool] | None = None
    #: the fields holding a name it makes, removes or renames (`convert.check_new_name`)
    names: tuple[str, ...] = ()
    #: the field holding the names it walks (at most MAXWELEM, each `convert.check_name`)
    walks: str | None = None
    #: the field naming the fid it makes (not where NOFID, nor where it is the request's
    #: own `fid`, which the request turns into the new object) ...
    newfid: str | None = None
    #: ... made if this says so of (request, reply) (None: whenever it succeeds; a walk's:
    #: when it walked every name)
    made: Callable[[Any, Any], bool] | None = None
    #: the field naming the fid it releases, whatever its outcome
    frees: str | None = None
    #: whether the gate has anything to check of such a message (from the above)
    gated: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gated", bool(self.modifies or self.names or self.walks))

    def created_fid(self, msg: Any) -> int | None:
        """The fid `msg` brings into existence if it succeeds."""
        if self.newfid is None:
            return None
        num: int = getattr(msg, self.newfid)
        if num == NOFID or (self.newfid != "fid" and num == getattr(msg, "fid", NOFID)):
            return None
        return num

    def creates(self, msg: Any, reply: Any) -> bool:
        """Whether successful `reply` means the fid of `msg` now exists."""
        if self.made is not None:
            return self.made(msg, reply)
        if self.walks is not None:  # a partial walk makes nothing
            return len(reply.qids) == len(getattr(msg, self.walks))
        return True


def writes(flags: int) -> bool:
    """Whether an open with wire `flags` (OpenFlag) may change the file: an access mode
    other than read-only, or O_TRUNC."""
    return writes_data(flags) or bool(flags & OpenFlag.TRUNC)


def opens_for_write(msg: Any) -> bool:
    """`modifies_if` of an open (Tlopen, Twalkopen): its flags may change the file."""
    return writes(msg.flags)


def attrs_made(msg: Any, reply: Any) -> bool:
    """`made` of Tmkdirattrs: its new fid exists if the reply carries its attributes."""
    return bool(reply.attr.valid)
