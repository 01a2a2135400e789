"""Options of a backend's exports (`ninep.options`), declared once: parsed as attach options,
and offered on the server's command line and config by `ninep.cli`."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from ninep import cli, config
from ninep.options import (
    Choice,
    ExportOption,
    Flag,
    Number,
    add_flag,
    documented,
    given,
    parse_attach,
)
from volfs.export import VolExport, open_export
from volfs.options import OPTIONS, AttachOptions

DECLARED = (
    ExportOption("on", Flag(), "turns it on", flag="on", attach="on"),
    ExportOption("off", Flag(False), "turns it off", flag="no-off"),
    ExportOption("mode", Choice({"a": 1, "b": 2}), "a mode", attach="mode"),
    ExportOption("size", Number("N", 8, 0o777), "a size", flag="size", attach="size"),
)


def test_attach_options_set_their_fields() -> None:
    assert parse_attach(DECLARED, "") == {}
    assert parse_attach(DECLARED, ";on;mode=b;;size=17") == {"on": True, "mode": 2, "size": 15}


@pytest.mark.parametrize(
    ("text", "why"),
    [("no-off", "unknown attach option 'no-off'"), ("on=1", "attach option 'on' takes no value"),
     ("mode=c", "attach option 'mode' takes a|b, not 'c'"),
     ("mode", "attach option 'mode' takes a|b, not None"),
     ("size=1000", "attach option 'size' takes a base-8 number, not '1000'")],
)  # fmt: skip
def test_a_bad_attach_option_says_which_and_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"^{why}$"):
        parse_attach(DECLARED, text)


def test_the_server_takes_each_flag_with_the_declared_value() -> None:
    """The flags `ninep.cli` offers of DECLARED, their values and help."""
    p = argparse.ArgumentParser()
    for option in (o for o in DECLARED if o.flag is not None):
        add_flag(p, option)
    assert given(p.parse_args([]), DECLARED) == {}
    args = p.parse_args(["--on", "--no-off", "--size", "010"])
    assert given(args, DECLARED) == {"on": True, "off": False, "size": 8}
    with pytest.raises(SystemExit):
        p.parse_args(["--size", "9"])
    assert "turns it on, for every attach" in p.format_help()
    assert "turns it off, for" not in p.format_help()


def test_the_man_pages_table_holds_the_attach_options() -> None:
    assert documented(DECLARED) == [("on", "", "turns it on"), ("mode", "a|b", "a mode"),
                                    ("size", "N", "a size")]  # fmt: skip


def test_volfs_declares_each_option_once_for_the_server_and_the_attach() -> None:
    """The server's per-export options are --read-only and volfs's flags, each a keyword of
    the factory; each attach option sets a field of AttachOptions."""
    assert open_export.options is OPTIONS and open_export.open is VolExport
    each = config.group_actions(cli.parser(), cli.EACH_EXPORT)
    assert [a.option_strings for a in each] == [
        ["--read-only"], *[[f"--{o.flag}"] for o in OPTIONS if o.flag is not None]]  # fmt: skip
    keywords = inspect.signature(VolExport).parameters
    fields = {f.name for f in dataclasses.fields(AttachOptions)}
    for option in OPTIONS:
        assert option.flag is None or option.field in keywords, option
        assert option.attach is None or option.field in fields, option
    assert open_export.confining() == next(o for o in OPTIONS if o.flag == "metadata")
