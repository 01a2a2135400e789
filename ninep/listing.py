"""The listing of exports (Texports): what a server says of each export, and its wire form.

Rexports carries one string per export: its name, then its defaults as
`;`-separated properties, the way an aname carries attach options:
`C;case=insensitive;escape`, `D;ro;case=insensitive;escape`,
`E;metadata;case=sensitive`. Never a host path. A client ignores properties it
does not know (docs/protocol-extensions.md).
"""

from __future__ import annotations

from dataclasses import dataclass


class NoListing(Exception):
    """The server offers no listing (not this project's, or an older one): one line."""


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """An export as a listing shows it: its name and the defaults of an attach to it."""

    name: str
    read_only: bool = False  # every attach is read-only
    metadata: bool = False  # every attach keeps POSIX metadata (docs/metadata.md)
    case_sensitive: bool = False  # a plain POSIX tree, no folding (docs/names.md)
    escape: bool = False  # names Windows cannot hold are escaped on the host

    def encode(self) -> str:
        """The listing's string for this export."""
        parts = [self.name, *(["ro"] if self.read_only else [])]
        parts += ["metadata"] if self.metadata else []
        parts.append(f"case={'sensitive' if self.case_sensitive else 'insensitive'}")
        parts += ["escape"] if self.escape else []
        return ";".join(parts)

    @classmethod
    def parse(cls, text: str) -> ExportInfo:
        """An export of a listing (properties not known here are ignored)."""
        name, *properties = text.split(";")
        return cls(
            name,
            read_only="ro" in properties,
            metadata="metadata" in properties,
            case_sensitive="case=sensitive" in properties,
            escape="escape" in properties,
        )
