"""The fold that decides which names are the same in a case-insensitive directory.

Two names are the same when their keys are equal: the key is the NFC form of
the full Unicode case folding of the NFC form (`Straße` = `STRASSE`, composed
`É` = decomposed `É`, the three Greek sigmas U+03A3, U+03C3, U+03C2 alike).
Folding is not Turkic: `I` folds to `i`, U+0130 (capital I with dot) to `i` +
U+0307, and U+0131 (dotless i) to itself. See docs/names.md.
"""

from __future__ import annotations

import unicodedata


def fold(name: str) -> str:
    """The case-insensitive key of the name `name` (as shown to clients)."""
    if name.isascii():  # the common case, and the same result
        return name.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
