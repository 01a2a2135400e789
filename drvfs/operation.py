"""What every FUSE operation shares: errors as FUSEError, names as the kernel's bytes."""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

log = logging.getLogger("drvfs")

P = ParamSpec("P")
T = TypeVar("T")


def operation(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn what an operation raises into FUSEError: OSError keeps its errno, bugs give EIO."""
    name = fn.__name__

    @functools.wraps(fn)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as e:
            log.debug("%s: %s", name, e)
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("%s failed", name)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapped


def name_str(name: bytes) -> str:
    """A name from the kernel as the wire's text (undecodable bytes kept as surrogates)."""
    return name.decode("utf-8", "surrogateescape")


def name_bytes(name: str) -> bytes:
    """A name from the wire as the kernel's bytes."""
    return name.encode("utf-8", "surrogateescape")
