"""The man pages `make install` writes (`scripts/manpages.py`), rendered by man(1) as a user
reads them: every option each command's --help shows, and every -o and attach option, is
there, and groff finds nothing to warn about."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drvfs.cli import HELPERS
from drvfs.options import documented as drvfs_options
from ninep.version import package_version
from volfs.options import documented as export_options

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
#: Each page, and the command lines whose --help it documents.
COMMANDS: dict[str, list[list[str]]] = {
    "man8/ninep-server.8": [[PYTHON, "-m", "ninep"]],
    "man8/drvfs.8": [[PYTHON, "-m", "drvfs", *sub] for sub in
                     ([], ["mount"], ["umount"], ["install-helper"])],
    **{f"man8/{name}.8": [[PYTHON, "-c", "import sys; sys.argv[0] = sys.argv[1]; "
                           "from drvfs.cli import mount_helper; sys.exit(mount_helper())", name]]
       for name in HELPERS},
    "man1/ninep-bench.1": [[PYTHON, "-m", "benchmarks.suite.cli", *sub] for sub in
                           ([], ["report"], ["compare"])],
}  # fmt: skip
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each page `python -m scripts.manpages` writes (as make install runs it), as `man -l`
    renders it (groff's warnings on)."""
    mandir = tmp_path_factory.mktemp("man")
    made = subprocess.run([PYTHON, "-m", "scripts.manpages", str(mandir)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    written = made.stdout.split()
    assert sorted(written) == sorted(COMMANDS)
    pages = {}
    for page in written:
        done = subprocess.run(["man", "--warnings", "-l", str(mandir / page)],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "MANWIDTH": "100"})  # fmt: skip
        assert done.returncode == 0 and done.stderr == "", done.stderr
        pages[page] = done.stdout
    return pages


def _help_options(command: list[str]) -> set[str]:
    """The options `command --help` names (unwrapped: a wide terminal)."""
    env = {**os.environ, "COLUMNS": "1000"}
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    found = set(_OPTION.findall(done.stdout))
    assert "--help" in found
    return found


@pytest.mark.parametrize("page", list(COMMANDS))
def test_every_option_of_help_is_in_the_page(page: str, rendered: dict[str, str]) -> None:
    text = rendered[page]
    name = Path(page).stem
    assert text.startswith(f"{name.upper()}(") and f"{name} - " in text
    assert f"ninep-volfs {package_version()}" in text
    shown = set(_OPTION.findall(text))
    for command in COMMANDS[page]:
        assert _help_options(command) - shown == set()
    assert "--version" in shown


@pytest.mark.parametrize("page", ["man8/drvfs.8", *[f"man8/{name}.8" for name in HELPERS]])
def test_every_mount_option_is_in_the_drvfs_pages(page: str, rendered: dict[str, str]) -> None:
    words = set(re.findall(r"[\w*-]+", rendered[page]))
    for names, value, _ in drvfs_options():
        assert set(names) <= words and (not value or value in words), names
    for name, value, _ in export_options():
        assert (f"{name}={value}" if value else name) in rendered[page]


def test_the_servers_page_lists_the_attach_options(rendered: dict[str, str]) -> None:
    text = rendered["man8/ninep-server.8"]
    attach = text[text.index("ATTACH OPTIONS") :]
    for name, value, help_text in export_options():
        assert (f"{name}={value}" if value else name) in attach
        assert " ".join(help_text.split()[:4]) in " ".join(attach.split())
