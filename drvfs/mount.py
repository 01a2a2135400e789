"""Mounting: connect, mount the FUSE filesystem, serve until unmounted or signalled."""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable

import pyfuse3
import trio

from ninep.listing import NoListing

from . import exports, mounts
from .fs import DrvFs
from .options import FUSE_IO_SIZE, MountOptions
from .remote import Attachment, Remote

log = logging.getLogger("drvfs")


class MountError(Exception):
    """The filesystem could not be mounted (mount helpers exit with 32, or 1 if `usage`)."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage  # the options were refused: the user's mistake


def fuse_options(export: str, options: MountOptions) -> set[str]:
    """The FUSE mount options: the user's and the names /proc/mounts shows (`C: fuse.drvfs`).

    No max_read: libfuse then wants init() to set the same value, which pyfuse3
    cannot; the kernel's limit (256 pages, 1 MiB) applies to reads and writes.
    """
    return {*options.fuse, f"fsname={mounts.source(export)}", f"subtype={mounts.SUBTYPE}"}


async def serve(
    export: str,
    mountpoint: str,
    options: MountOptions,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Mount export `export` on `mountpoint` and serve it until unmounted or SIGTERM/SIGINT.

    `ready` is called once the kernel has initialised the mount (it answers requests
    from then on). Raises MountError if it cannot be mounted.
    """
    failure: list[MountError] = []
    async with trio.open_nursery() as nursery:
        try:
            await _serve(nursery, export, mountpoint, options, ready)
        except MountError as e:  # raised below, not wrapped in an ExceptionGroup
            failure.append(e)
        nursery.cancel_scope.cancel()
    if failure:
        raise failure[0]


async def _serve(
    nursery: trio.Nursery,
    export: str,
    mountpoint: str,
    options: MountOptions,
    ready: Callable[[], None],
) -> None:
    remote = Remote(
        nursery, options.server, options.aname(export), os.getuid(), options.msize, options.timeout
    )
    try:
        attachment = await remote.attachment()
    except ConnectionError as e:
        raise MountError(e.strerror or str(e), usage=e.errno == errno.EINVAL) from None
    escape = await _escapes(attachment, export, options.server)
    fs = DrvFs(remote, attachment, options, nursery, on_init=ready, escape=escape)
    mountpoint = os.path.realpath(mountpoint)  # not once mounted: a stat would wait for INIT
    if attachment.client.iosize < FUSE_IO_SIZE:
        log.info("msize %d: a 1 MiB read or write takes two messages", attachment.client.msize)
    try:
        pyfuse3.init(fs, mountpoint, fuse_options(export, options))
    except RuntimeError as e:
        remote.close()
        raise MountError(f"cannot mount on {mountpoint}: {e}") from None
    _set_read_ahead(mountpoint, FUSE_IO_SIZE)
    log.info("mounted %s: from %s on %s", export, options.server, mountpoint)
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            nursery.start_soon(_terminate_on_signal, signals)
            await pyfuse3.main()
    finally:
        fs.notifications.close()
        pyfuse3.close(unmount=True)
        remote.close()
    log.info("unmounted %s", mountpoint)


async def _escapes(attachment: Attachment, export: str, server: str) -> bool:
    """Whether the server escapes names in `export` (its listing, asked on a connection of
    its own: a ninep-server from before Texports closes the one that asks); False where it
    has no listing."""
    if not attachment.client.extended:
        return False
    try:
        listed = await exports.fetch(server)
    except (NoListing, OSError) as e:
        log.info("names taken as not escaped: %s", e)
        return False
    return any(info.escape for info in listed if info.name == export)


def _set_read_ahead(mountpoint: str, size: int) -> None:
    """Let the kernel read ahead `size` bytes, so that reads come as whole FUSE reads.

    The default (128 KiB) cuts a sequential read into 128 KiB requests. Needs
    root. The mount's device is found in mountinfo: `mountpoint` (a real path)
    must not be looked at, that would wait for the kernel's INIT, answered later.
    """
    try:
        mounted = mounted_at(mountpoint)
        if mounted is not None:
            with open(f"/sys/class/bdi/{mounted.device}/read_ahead_kb", "w") as f:
                f.write(str(size // 1024))
    except OSError as e:
        log.info("cannot set the read-ahead of %s: %s", mountpoint, e)


def mounted_at(path: str) -> mounts.Mount | None:
    """The topmost mount on `path` (a real path), from mountinfo: `path` is never looked at."""
    found = [m for m in mounts.table() if m.mountpoint == path]
    return found[-1] if found else None


async def _terminate_on_signal(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log.info("%s: unmounting", signal.Signals(signum).name)
        pyfuse3.terminate()
        return
