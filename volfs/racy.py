"""The racy rule: when a value read of a host object may stand for it without a new read.

Every change of a host object (its data, its attributes, its extended
attributes) sets its ctime; a value read of it (a directory's listing, a
file's stored metadata) holds while its stamp, taken by the fstat each request
makes anyway, is the same. But filesystems stamp with a coarse clock (some
store whole seconds): a change made in the same tick as the one a stamp
records leaves the stamp as it was. So a value is relied on only if the ctime
was already `settled` when it was read: any later change then gets a later
ctime. A value read while the ctime was recent (racy) is read again at its next
use. git's "racy git" rule is the precedent.

Nothing can show a change on a filesystem that does not set the ctime (or sets
it to a chosen value): a host process that changes an object behind the
server's back is seen through the ctime or not at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

SETTLE_NS = 20_000_000  # longer than a clock tick and than sub-second timestamp steps
SETTLE_WHOLE_SECONDS_NS = 2_000_000_000  # a filesystem that stores whole (even) seconds


def settled(st: os.stat_result, now_ns: int, settle_ns: int = SETTLE_NS) -> bool:
    """Whether every change after `now_ns` gets a ctime other than `st`'s.

    True once the ctime is `settle_ns` old, or `SETTLE_WHOLE_SECONDS_NS` if it
    is a whole second (a filesystem that stores whole or even seconds).
    """
    whole_seconds = st.st_ctime_ns % 10**9 == 0
    margin = max(settle_ns, SETTLE_WHOLE_SECONDS_NS) if whole_seconds else settle_ns
    return now_ns - st.st_ctime_ns >= margin


class Memo(Generic[T]):
    """The last value read of one host object, kept while its ctime shows no change."""

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        self._kept: tuple[int, int, T] | None = None  # st_ino, st_ctime_ns, the value

    def recall(self, st: os.stat_result, read: Callable[[], T]) -> T:
        """The value for the object's stat `st`, taken just now: the kept one if it was
        read under the same stamp, settled; else `read()` (and kept if settled)."""
        kept = self._kept
        if kept is not None and kept[0] == st.st_ino and kept[1] == st.st_ctime_ns:
            return kept[2]
        now = time.time_ns()
        value = read()
        self._kept = (st.st_ino, st.st_ctime_ns, value) if settled(st, now) else None
        return value
