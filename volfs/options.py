"""The options of a volfs export, declared once in `OPTIONS` (`ninep.options`): the
server's (`--metadata`, a keyword of `VolExport`), the attach's, and both.

Attach options are the part of the aname after the export name: `NAME;opt;opt=value;...`;
the server hands over everything after the first `;`, parsed here (`parse_options`).
"""

from __future__ import annotations

import enum
import errno
import logging
from dataclasses import dataclass, replace

from ninep import options
from ninep.options import Choice, ExportOption, Flag, Number

log = logging.getLogger(__name__)


class CaseOption(enum.Enum):
    """`case=`: which directories below the root are case-sensitive (WSL's meaning)."""

    OFF = "off"  # those whose flag is set; new directories inherit their parent's flag
    DIR = "dir"  # as OFF, and every directory a client creates gets the flag
    FORCE = "force"  # every one


@dataclass(frozen=True, slots=True)
class AttachOptions:
    """What an attach asked for."""

    read_only: bool = False
    case: CaseOption = CaseOption.OFF
    metadata: bool = False  # POSIX metadata in extended attributes (docs/metadata.md)
    client_groups: bool = False  # metadata on: the client decides group membership for
    # chgrp by the owner and setgid (a kernel client with access=client; docs/metadata.md)
    uid: int | None = None  # metadata off: the owner shown (None: the attaching uid)
    gid: int | None = None  # metadata off: the group shown (None: the attaching uid's)
    umask: int | None = None  # metadata off: permission bits taken from every object
    fmask: int | None = None  # ... from files
    dmask: int | None = None  # ... from directories


_ID_MAX = 0xFFFF_FFFE  # (uid_t)-1 is never an id
_MASK = 0o777

#: Every option of a volfs export: the server's (`flag`, keywords of `VolExport`), the
#: attach's (`attach`, fields of `AttachOptions`), and those that are both.
OPTIONS: tuple[ExportOption, ...] = (
    ExportOption("read_only", Flag(), "read-only: every change is refused (EROFS)",
                 attach="ro"),
    ExportOption("case_sensitive", Choice({"insensitive": False, "sensitive": True}),
                 "insensitive (default): case-preserving, case-insensitive directories, as a "
                 "Windows drive under WSL; sensitive: a plain POSIX tree, no folding, no "
                 "escaping", flag="case"),
    ExportOption("escape", Flag(False), "store names as given, without escaping the "
                 "characters Windows cannot hold", flag="no-escape"),
    ExportOption("case", Choice({c.value: c for c in CaseOption}), "which directories are "
                 "case-sensitive: those flagged (off, the default), also every directory made "
                 "through this attach (dir), or all (force)", attach="case"),
    ExportOption("metadata", Flag(), "POSIX modes, owners and special files kept in extended "
                 "attributes, and enforced (docs/metadata.md)", flag="metadata",
                 attach="metadata", confines=True),
    ExportOption("squash_root", Flag(), "in attaches with metadata (--metadata or the attach "
                 "option): uid 0 acts as nobody (65534), not as root. Without metadata there "
                 "is nothing to squash: the export enforces nothing and every client acts as "
                 "the serving user", flag="squash-root"),
    ExportOption("client_groups", Flag(), "with metadata: the client's group membership "
                 "stands for chgrp by the owner and for setgid (for a kernel client mounted "
                 "with access=client, which has checked)", flag="client-groups",
                 attach="client_groups"),
    ExportOption("uid", Number("UID", 10, _ID_MAX), "without metadata: the owner shown "
                 "(default: the attaching user)", attach="uid"),
    ExportOption("gid", Number("GID", 10, _ID_MAX), "without metadata: the group shown",
                 attach="gid"),
    ExportOption("umask", Number("OCTAL", 8, _MASK), "without metadata: permission bits "
                 "taken from every object", attach="umask"),
    ExportOption("fmask", Number("OCTAL", 8, _MASK), "the same, from files", attach="fmask"),
    ExportOption("dmask", Number("OCTAL", 8, _MASK), "the same, from directories",
                 attach="dmask"),
)  # fmt: skip


def documented() -> list[tuple[str, str, str]]:
    """(name, value, help) of each attach option, for the man pages."""
    return options.documented(OPTIONS)


def parse_options(text: str, given: AttachOptions = AttachOptions()) -> AttachOptions:
    """`given` (the export's, for every attach) with the attach options `opt;opt=value;...`
    (empty items are skipped); an unknown or a bad option is EINVAL."""
    try:
        fields = options.parse_attach(OPTIONS, text)
    except ValueError as e:
        log.warning("%s", e)
        raise OSError(errno.EINVAL, str(e)) from None
    return replace(given, **fields)
