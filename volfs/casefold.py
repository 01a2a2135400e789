"""The fold that decides which names are the same in a case-insensitive directory.

Two names are the same when their keys are equal: the key is the NFC form of
the full Unicode case folding of the NFC form (`Straße` = `STRASSE`, composed
`É` = decomposed `É`, the three Greek sigmas U+03A3, U+03C3, U+03C2 alike).
Folding is not Turkic: `I` folds to `i`, U+0130 (capital I with dot) to `i` +
U+0307, and U+0131 (dotless i) to itself. See docs/names.md. Declared in
`ninep.convert`, which drvfs shares: it answers misses itself by the same key.
"""

from __future__ import annotations

from ninep.convert import fold

__all__ = ["fold"]
