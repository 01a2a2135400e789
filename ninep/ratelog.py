"""Log lines that a flood cannot multiply: one per key per interval, with a count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL = 60.0  # seconds between two lines of one key
KEYS = 1024  # keys remembered at once; past it, those not logged within the interval go


class RateLog:
    """At most one line per key (a peer uid, a network, "descriptors") every `interval`
    seconds; the next line after a quiet spell says how many were not written."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # key -> (last written, not written since)

    def warning(self, key: str, message: str) -> bool:
        """Write `message` unless `key` was written within the interval; whether written."""
        now = self._clock()
        last, held = self._seen.get(key, (None, 0))
        if last is not None and now - last < self._interval:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) >= KEYS:
            self._forget(now)
        more = f" ({held} more like it not logged)" if held else ""
        self._log.warning("%s%s", message, more)
        self._seen[key] = (now, 0)
        return True

    def _forget(self, now: float) -> None:
        """Make room: drop the keys not written within the interval (all, if none is)."""
        stale = [k for k, (t, _) in self._seen.items() if now - t >= self._interval]
        for key in stale or list(self._seen):
            del self._seen[key]
