"""Where a new object is made (`Site`), and the host call that makes it there (`Make`).

A policy (`volfs.policy`) checks what it must and returns a `Make`, so that a
refusal costs no host call; `volfs.node_create` runs it on a `Site` within
the bracket of the directory's change.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from . import stored
from .dirindex import ExportChange

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Site:
    """Where a new object is made: entry `host` of directory `dirfd`.

    `change` records it (`volfs.dirindex`); `opening` counts an open handle
    (`Descriptors.opening`).
    """

    dirfd: int
    host: str
    change: ExportChange
    staging: stored.Staging
    opening: Callable[[], AbstractContextManager[None]]

    def made(self) -> None:
        """Record that the entry now exists."""
        self.change.added.append(self.host)


Make = Callable[[Site], T]
"""One host call (or atomic sequence) that makes the object at a Site."""


def mkdir_at(settle: Callable[[int], None] | None, site: Site) -> None:
    """A directory at `site`, given its attributes by `settle` if any (`stored.make_dir`)."""
    stored.make_dir(site.dirfd, site.host, settle, site.staging)
    site.made()
