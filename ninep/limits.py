"""The bounds on what one connection, and all of them together, may make the server hold
(docs/operations.md)."""

from __future__ import annotations

import errno
import resource
from dataclasses import dataclass, field

BIG = 64 * 1024  # a request or reply moving more data than this counts as big


def descriptor_share(divisor: int) -> int:
    """A `divisor`th of this process's descriptor limit (RLIMIT_NOFILE's soft limit, which
    `ninep-server` raises to the hard limit before it starts), at least 16."""
    return max(16, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // divisor)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds; past them the server stops reading that connection, or
    refuses what would go past them."""

    in_flight: int = 32  # requests being served at once
    big_in_flight: int = 4  # of them, those moving more than BIG bytes of data
    read_ahead: int = 16  # requests read and queued while at the bound (a Tflush is served at once)
    fids: int = 65536  # fids held; one more is refused with EMFILE
    changes: int = 4096  # changes notified and not yet collected (Tnotify); past it, OVERFLOW
    # files open at once (one more open is EMFILE): no connection takes every descriptor
    open_files: int = field(default_factory=lambda: descriptor_share(8))

    def __post_init__(self) -> None:
        if min(self.in_flight, self.big_in_flight, self.read_ahead, self.fids, self.changes,
               self.open_files) < 1:  # fmt: skip
            raise ValueError(f"every limit must be at least 1: {self}")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds on all connections together."""

    connections: int = 1024  # served at once; one more is closed before its Tversion
    connections_per_peer: int = 256  # of them, from one local uid or one other host
    fids: int = 262144  # held by all connections; one more is refused with EMFILE
    # files open on all connections (one more open is ENFILE); the rest of the descriptors
    # are for connections, listeners, and the export's own (volfs/descriptors.py)
    open_files: int = field(default_factory=lambda: descriptor_share(2))

    def __post_init__(self) -> None:
        if min(self.connections, self.connections_per_peer, self.fids, self.open_files) < 1:
            raise ValueError(f"every limit must be at least 1: {self}")


class Budget:
    """A count shared by every connection of a server, bounded by `limit`."""

    __slots__ = ("code", "limit", "used", "what")

    def __init__(self, limit: int, what: str, code: int) -> None:
        self.limit = limit
        self.used = 0
        self.what = what  # what is counted, for the error: "fids", "open files"
        self.code = code  # the errno of one too many

    def check(self) -> None:
        """Before taking one: `code` if none is left."""
        if self.used >= self.limit:
            raise OSError(self.code, f"the server holds {self.limit} {self.what}, its limit")


@dataclass(frozen=True, slots=True)
class Budgets:
    """What the connections of one server share."""

    fids: Budget
    open_files: Budget

    @classmethod
    def of(cls, limits: ServerLimits) -> Budgets:
        return cls(
            Budget(limits.fids, "fids", errno.EMFILE),
            Budget(limits.open_files, "open files", errno.ENFILE),
        )

    @classmethod
    def unbounded(cls) -> Budgets:
        """For a connection served alone (tests, `serve_fds`' own server)."""
        return cls.of(ServerLimits(fids=1 << 62, open_files=1 << 62))
