"""The host calls this process makes, as Python's audit events (`sys.addaudithook`).

Python raises an audit event for most calls that reach the host (`open`,
`os.getxattr`, `os.rename`, ...), with their arguments, before the call is
made, in the thread that makes it. Tests count them, and make a host change
at a precise point of an operation (between two of its calls) to meet a race.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Listener = Callable[[str, tuple[Any, ...]], None]
_listeners: list[Listener] = []
_hooked: list[bool] = []


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    for listener in list(_listeners):
        listener(event, args)


@contextmanager
def audited(listener: Listener) -> Iterator[None]:
    """Call `listener(event, args)` for each audit event of this process while the block
    runs (a listener's own host calls raise events too, and reach it)."""
    if not _hooked:
        sys.addaudithook(_dispatch)  # once per process: a hook cannot be removed
        _hooked.append(True)
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
