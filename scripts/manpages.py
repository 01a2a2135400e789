"""The man pages, generated from the commands' argument parsers and option declarations.

    python -m scripts.manpages MANDIR     (`make install` runs it)

writes ninep-server(8), drvfs(8), mount.drvfs(8) and mount.fuse.drvfs(8) (the same
page under each helper's name), and ninep-bench(1) under MANDIR/man8 and MANDIR/man1,
and prints each page's path relative to MANDIR. Only each page's frame is written here
(its sections, a few sentences): every option and its help come from the parsers
(`ninep.cli`, `drvfs.cli`, `benchmarks.suite.cli`), drvfs's `-o` options from
`drvfs.options`, the export's from `volfs.options`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.suite import cli as bench_cli
from drvfs import cli as drvfs_cli
from drvfs import options as drvfs_options
from ninep import cli as server_cli
from ninep.version import DISTRIBUTION, package_version
from volfs import options as volfs_options


def escape(text: str) -> str:
    """`text` safe in roff: backslashes, hyphens (never broken across lines), leading dots."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def _paragraphs(text: str) -> str:
    return "\n.PP\n".join(escape(" ".join(p.split())) for p in text.split("\n\n") if p.strip())


def _invocation(action: argparse.Action) -> str:
    """`\\fB--flag\\fR \\fIMETAVAR\\fR, ...` of an optional, `\\fIMETAVAR\\fR` of a positional."""
    if not action.option_strings:
        return f"\\fI{escape(action.metavar or action.dest)}\\fR"  # type: ignore[arg-type]
    value = ""
    if action.nargs != 0:
        metavar = action.metavar or (
            "{" + ",".join(map(str, action.choices)) + "}"
            if action.choices
            else action.dest.upper()
        )
        value = f" \\fI{escape(str(metavar))}\\fR"
    return ", ".join(f"\\fB{escape(flag)}\\fR{value}" for flag in action.option_strings)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return escape(" ".join(formatter._expand_help(action).split())) if action.help else ""


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """The parser's arguments, group by group (`.SS` for groups of their own)."""
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS
                   and not isinstance(a, argparse._SubParsersAction)]  # fmt: skip
        if not actions:
            continue
        if group.title not in ("positional arguments", "options", "optional arguments"):
            lines.append(f".SS {escape(group.title or '')}")
            if group.description:
                lines.append(escape(group.description))
        for action in actions:
            lines += [".TP", _invocation(action), _help(parser, action)]
    return lines


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line, filled, never broken inside a [bracket]."""
    text = escape(" ".join(parser.format_usage().removeprefix("usage: ").split()))
    return ".PP\n" + re.sub(r"\[[^][]*\]", lambda m: m[0].replace(" ", "\\~"), text)


def _table(rows: Iterable[tuple[Sequence[str], str, str]]) -> list[str]:
    """`.TP` entries of `-o` options: (names, value, help)."""
    lines = []
    for names, value, text in rows:
        shown = f"={value}" if value else ""
        lines += [".TP", ", ".join(f"\\fB{escape(n)}\\fR{escape(shown)}" for n in names),
                  escape(text)]  # fmt: skip
    return lines


@dataclass
class Page:
    """One man page: its name, section, one-line summary and body."""

    name: str
    section: int
    summary: str
    body: list[str]

    def render(self) -> str:
        head = [
            f'.TH "{self.name.upper()}" "{self.section}" "" '
            f'"{DISTRIBUTION} {package_version()}" "{DISTRIBUTION}"',
            ".nh",  # no hyphenation, no justification: options stay whole, as typed
            ".ad l",
            ".SH NAME",
            f"{escape(self.name)} \\- {escape(self.summary)}",
        ]
        return "\n".join([*head, *self.body]) + "\n"


def _examples(epilog: str | None) -> list[str]:
    text = (epilog or "").strip().removeprefix("examples:\n")
    return [".SH EXAMPLES", ".nf", escape(text), ".fi"] if text else []


def _export_options() -> list[tuple[list[str], str, str]]:
    return [([name], value, text) for name, value, text in volfs_options.documented()]


def server_page() -> Page:
    p = server_cli.parser()
    body = [".SH SYNOPSIS", _usage(p), ".SH DESCRIPTION", _paragraphs(
        "ninep-server serves host directories over 9P2000.L, with WSL's names (case-preserving, "
        "case-insensitive) and, with metadata, POSIX modes and owners in extended attributes. "
        "Clients are the Linux kernel's 9p client (mount -t 9p) and drvfs(8).\n\n"
        "SIGINT or SIGTERM stops it cleanly. A start-up failure is one line on standard error "
        "and exit status 1; a bad command line, exit status 2."
    ), ".SH OPTIONS", *_options(p), ".SH ATTACH OPTIONS", _paragraphs(
        "A client picks an export by its attach name (aname=NAME) and may add options after "
        "a ';' (aname=C;metadata;uid=1000). Unknown options are refused (EINVAL)."
    ), *_table(_export_options()), *_examples(p.epilog),
        ".SH SEE ALSO", "\\fBdrvfs\\fR(8), \\fBmount\\fR(8), \\fBninep-bench\\fR(1)"]  # fmt: skip
    return Page("ninep-server", 8, p.description or "", body)


def _mount_options() -> list[str]:
    return [".SH MOUNT OPTIONS", _paragraphs(
        "Given with -o, comma-separated, or in the options field of fstab(5). Options drvfs "
        "knows are its own or FUSE's; every other one is the export's (below): it travels to "
        "the server in the attach name, and the server alone judges it. One the server refuses "
        "makes the mount exit with status 1, as does a bad value of drvfs's own."
    ), *_table(drvfs_options.documented()), ".SS export options (see ninep-server(8))",
        *_table(_export_options())]  # fmt: skip


_EXIT = (
    "0: mounted (or unmounted). 1: a bad command line or option, or options the server "
    "refused. 32: the mount failed (server unreachable, export refused, mount point "
    "missing, already mounted or dead), or an unmount did (not mounted, busy)."
)


def drvfs_page() -> Page:
    p = drvfs_cli.parser()
    body = [".SH SYNOPSIS", _usage(p)]
    body += [_usage(sub) for _, sub in _subcommands(p)]
    body += [".SH DESCRIPTION", _paragraphs(
        "drvfs mounts an export of a 9P2000.L server (ninep-server(8), or another such as "
        "diod) with FUSE, the way WSL mounts a Windows drive at /mnt/c. It runs in the "
        "background once mounted, logging to syslog unless --log FILE is given; SIGTERM, "
        "drvfs umount or umount(8) unmount it. mount -t drvfs and mount -t fuse.drvfs (and "
        "fstab) run it through mount.drvfs(8)."
    ), ".SH OPTIONS", *_options(p)]  # fmt: skip
    for name, sub in _subcommands(p):
        body += [f'.SH "COMMAND: {escape(name.upper())}"', *_options(sub)]
    body += [*_mount_options(), ".SH EXIT STATUS", escape(_EXIT), *_examples(p.epilog),
             ".SH SEE ALSO", "\\fBmount.drvfs\\fR(8), \\fBninep-server\\fR(8), \\fBmount\\fR(8), "
             "\\fBfstab\\fR(5), \\fBfusermount3\\fR(1)"]  # fmt: skip
    return Page("drvfs", 8, p.description or "", body)


def helper_page(name: str) -> Page:
    p = drvfs_cli.helper_parser(name)
    body = [".SH SYNOPSIS", _usage(p), ".SH DESCRIPTION", _paragraphs(
        f"The helper mount(8) runs for mount -t drvfs and mount -t fuse.drvfs (the type "
        f"/proc/mounts shows), installed as {' and '.join(drvfs_cli.HELPERS)} in /sbin. It "
        "mounts in the background, as drvfs mount does, and returns once mounted.\n\n"
        "In fstab(5): C: /mnt/c drvfs server=tcp:127.0.0.1:5640,metadata,_netdev,nofail 0 0 "
        "(add x-systemd.automount to mount it when first used)."
    ), ".SH OPTIONS", *_options(p), *_mount_options(), ".SH EXIT STATUS", escape(_EXIT),
        ".SH SEE ALSO", "\\fBdrvfs\\fR(8), \\fBmount\\fR(8), \\fBfstab\\fR(5)"]  # fmt: skip
    return Page(name, 8, p.description or "", body)


def bench_page() -> Page:
    p = bench_cli.parser()
    readers = [bench_cli.reader_parser(name) for name in bench_cli.READERS]
    body = [".SH SYNOPSIS", _usage(p), *[_usage(r) for r in readers], ".SH DESCRIPTION",
            _paragraphs(bench_cli.__doc__ or ""), ".SH OPTIONS", *_options(p)]  # fmt: skip
    for reader in readers:
        body += [f'.SH "{escape(reader.prog.upper())}"', _paragraphs(reader.description or ""),
                 *_options(reader)]  # fmt: skip
    body += [".SH SEE ALSO", "\\fBninep-server\\fR(8), \\fBdrvfs\\fR(8)"]
    return Page("ninep-bench", 1, (p.description or "").removeprefix("ninep-bench: "), body)


def pages() -> list[Page]:
    """Every page: a helper's under each name mount(8) runs it by."""
    return [server_page(), drvfs_page(), *map(helper_page, drvfs_cli.HELPERS), bench_page()]


def write(mandir: Path) -> list[str]:
    """Write every page under `mandir`; their paths relative to it."""
    written = []
    for page in pages():
        written.append(f"man{page.section}/{page.name}.{page.section}")
        (mandir / f"man{page.section}").mkdir(parents=True, exist_ok=True)
        (mandir / written[-1]).write_text(page.render())
    return written


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m scripts.manpages MANDIR")
    for path in write(Path(sys.argv[1])):
        print(path)


if __name__ == "__main__":
    main()
