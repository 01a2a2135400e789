"""Names Windows cannot hold, kept on the host as private-use characters (see docs/names.md).

Each character Windows refuses in a name (`\\ : * ? " < > |` and U+0001-U+001F)
is stored on the host as U+F000 + the character, as WSL does. The mapping is one
involution, `swap`, used both ways: it exchanges each of those 39 characters with
its private-use image and leaves every other character alone. So it is a
bijection on all names: a host name made by hand that holds an image (U+F03A) is
shown as the character (`:`), and one that holds the raw character (`:`, which
a Linux host allows) is shown as the image (U+F03A); both lead back to the
same host name. Other private-use characters (U+F041, U+E000...) pass unchanged.

It lives in ninep, apart from volfs, for the clients too: `drvfs path` escapes
names as the server stores them (Windows paths, as wslpath gives).
"""

from __future__ import annotations

import re

ESCAPE_BASE = 0xF000
#: The characters Windows cannot store in a name (`/` and NUL never reach a name at all).
WINDOWS_ILLEGAL = '\\:*?"<>|' + "".join(chr(c) for c in range(0x01, 0x20))

_SWAP: dict[int, int] = {}
for _c in map(ord, WINDOWS_ILLEGAL):
    _SWAP[_c] = ESCAPE_BASE + _c
    _SWAP[ESCAPE_BASE + _c] = _c
_TOUCHED = re.compile("[" + re.escape("".join(map(chr, _SWAP))) + "]")


def swap(name: str) -> str:
    """`name` with each Windows-illegal character and its private-use image exchanged."""
    return name.translate(_SWAP) if _TOUCHED.search(name) else name  # most names: untouched


def identity(name: str) -> str:
    """`name` itself (an export that does not escape)."""
    return name
