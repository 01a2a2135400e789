"""Which extended attributes clients may use: one rule for get, set, remove and list.

Clients see and set `user.` attributes, less the export's own (the metadata
attributes of `volfs.metadata` and the host's case flag of `volfs.caseflag`),
and WSL's case flag `system.wsl_case_sensitive` (mapped by `volfs.caseflag`).
Other namespaces (`security.`, `trusted.`, the other `system.` names) would
turn a client's claim into host privilege or host meaning (file capabilities,
SELinux labels, ACLs): they are refused with EOPNOTSUPP, what Linux gives for
a namespace it does not support.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Final

from . import caseflag, metadata

USER: Final = "user."


def in_client_namespace(name: str) -> bool:
    """Whether clients may use the namespace of xattr `name` (the rule of this module)."""
    return name.startswith(USER) or caseflag.is_client_name(name)


def check_namespace(name: str) -> None:
    """EOPNOTSUPP unless `in_client_namespace(name)`."""
    if not in_client_namespace(name):
        message = f"extended attribute {name!r}: only user. attributes are served"
        raise OSError(errno.EOPNOTSUPP, message)


def reserved(name: str) -> bool:
    """Whether host xattr `name` is the export's own: never read, listed, set or removed."""
    return caseflag.is_hidden(name) or metadata.is_internal(name)


def listed(names: Iterable[str]) -> list[str]:
    """The host xattr names of `names` that a client's listxattr shows (not the case flag's)."""
    return [
        n
        for n in names
        if in_client_namespace(n) and not reserved(n) and not caseflag.is_client_name(n)
    ]
