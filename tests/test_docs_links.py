"""Every relative link of the README and docs/*.md leads to a file of the repository, and
every `#anchor` to a heading of the page it names (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _links(page: Path) -> list[str]:
    """The link targets of `page` outside code blocks, but web addresses."""
    text = _FENCE.sub("", page.read_text())
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of `page`: lower case, punctuation dropped, spaces
    as dashes."""
    text = _FENCE.sub("", page.read_text())
    titles = re.findall(r"^#+\s+(.*?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in titles}


def test_the_pages_have_links() -> None:
    assert len(PAGES) > 5
    assert "docs/architecture.md" in _links(REPO / "README.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or (dest.suffix == ".md" and anchor not in {"", *_anchors(dest)}):
            broken.append(target)
    assert broken == []
