"""The bounds on what one connection may make the server hold (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass

BIG = 64 * 1024  # a request or reply moving more data than this counts as big


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds; past them the server stops reading that connection."""

    in_flight: int = 32  # requests being served at once
    big_in_flight: int = 4  # of them, those moving more than BIG bytes of data
    read_ahead: int = 16  # requests read and queued while at the bound (a Tflush is served at once)
    fids: int = 65536  # fids held; one more is refused with EMFILE
    changes: int = 4096  # changes notified and not yet collected (Tnotify); past it, OVERFLOW

    def __post_init__(self) -> None:
        if min(self.in_flight, self.big_in_flight, self.read_ahead, self.fids, self.changes) < 1:
            raise ValueError(f"every limit must be at least 1: {self}")
