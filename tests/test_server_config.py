"""`ninep-server --config FILE`: exports, listeners and options from a TOML file, flags over
it, every key documented, a bad file refused in one line naming the key."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drvfs import bootconf
from ninep import cli, config
from ninep.client import connect
from ninep.constants import OpenFlag

from .drvfs_harness import short_dir
from .notified import REPO, SERVER, notified_server, three_exports


@pytest.fixture
def place() -> Iterator[Path]:
    """A short directory (for unix socket paths) with three export directories."""
    with short_dir() as path:
        for name in "cde":
            (path / name).mkdir()
        yield path


def _write_config(place: Path) -> Path:
    return three_exports(place, "verbose = 1\nmax-fids = 1000\n")


async def _creates(address: str, export: str) -> bool:
    """Whether a file can be created in `export` (False: EROFS)."""
    async with connect(address) as client:
        root = await client.attach(export)
        try:
            await root.create_getattr("new", OpenFlag.WRONLY, 0o644)
        except OSError as e:
            assert e.errno == errno.EROFS
            return False
        return True


async def test_the_file_gives_exports_listeners_and_per_export_options(place: Path) -> None:
    cfg = _write_config(place)
    with notified_server(place, ["--config", str(cfg)]):
        address = f"unix:{place}/9p.sock"
        assert [await _creates(address, x) for x in "CDE"] == [True, False, True]
    assert "user.virtfs.mode" in os.listxattr(place / "e" / "new")  # E keeps metadata
    assert not os.listxattr(place / "c" / "new")


async def test_flags_override_the_file(place: Path) -> None:
    cfg = _write_config(place)
    other = place / "other.sock"
    args = ["--config", str(cfg), "--read-only", "--listen", f"unix:{other}"]
    with notified_server(place, args):
        assert not (place / "9p.sock").exists()  # --listen replaced the file's list
        assert [await _creates(f"unix:{other}", x) for x in "CDE"] == [False, False, False]
    only = ["--config", str(cfg), "--listen", f"unix:{other}", "--export", f"X={place}/c"]
    with notified_server(place, only):  # --export replaces the file's exports
        async with connect(f"unix:{other}") as client:
            await client.attach("X")
            with pytest.raises(OSError) as e:
                await client.attach("C")
            assert e.value.errno == errno.ENOENT


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("max-fids = 0", "key 'max-fids': must be at least 1"),
        ("max-fid = 1", "unknown key 'max-fid'"),
        ("metadata = 1", "key 'metadata': expected true or false"),
        ('case = "upper"', "key 'case': 'upper' is not one of: insensitive, sensitive"),
        ('listen = ["udp:1"]', "key 'listen': address 'udp:1': unknown scheme 'udp'"),
        ("watch-share = 2", "key 'watch-share': a share is between 0 and 1"),
        ('[export.F]\npath = "relative"', "key 'export.F.path': expected an absolute path"),
        ('[export.F]\npath = "/srv"\nuser = "x"', "unknown key 'export.F.user'"),
        ('[export."a;b"]\npath = "/srv"', "key 'export.a;b': 'a;b=/srv': expected NAME=PATH"),
        ('export = ["C=/srv"]', "key 'export': expected tables [export.NAME]"),
        ("listen = [", "Invalid value"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(place: Path, text: str, line: str) -> None:
    cfg = place / "bad.toml"  # `text`, and an export unless it has its own
    cfg.write_text(text if "export" in text else f'{text}\n[export.C]\npath = "{place}/c"\n')
    out = subprocess.run([*SERVER, "--config", str(cfg)], capture_output=True, text=True,
                         cwd=REPO, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert out.stderr.startswith(f"ninep-server: {cfg}: ") and line in out.stderr, out.stderr


def test_a_missing_file_or_no_export_is_one_line(place: Path) -> None:
    empty = place / "empty.toml"
    empty.write_text("")
    for path, why in [(place / "none.toml", "No such file or directory"),
                      (empty, "no export: add an [export.NAME] table")]:  # fmt: skip
        out = subprocess.run([*SERVER, "--config", str(path)], capture_output=True, text=True,
                             cwd=REPO, timeout=60)  # fmt: skip
        assert (out.returncode, out.stderr) == (1, f"ninep-server: {path}: {why}\n")


def test_every_option_is_a_key_and_every_key_is_documented() -> None:
    p = cli.parser()
    keys = config.keys(p._actions)
    long = {o[2:] for a in p._actions for o in a.option_strings if o.startswith("--")}
    assert set(keys) == long - {"help", "version", "config"}
    doc = (REPO / "docs" / "boot.md").read_text()
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", doc, re.M))
    per_export = set(config.keys(config.group_actions(p, cli.EACH_EXPORT)))
    assert per_export == {"read-only", "case", "no-escape", "metadata", "squash-root",
                          "client-groups"}  # fmt: skip
    assert documented == set(keys)


def test_the_documented_examples_are_valid(tmp_path: Path) -> None:
    """The config files of docs/boot.md read without an error, as they say."""
    doc = (REPO / "docs" / "boot.md").read_text()
    (server,) = re.findall(r"```toml\n(.*?)```", doc, re.S)
    (server_file := tmp_path / "server.toml").write_text(server)
    settings = config.load(str(server_file), cli.parser(), cli.EACH_EXPORT)
    e_options = {"metadata": True, "case": "sensitive"}
    assert [(e.name, e.options) for e in settings.exports] == [
        ("C", {}), ("D", {"read_only": True}), ("E", e_options)]  # fmt: skip
    (drvfs_conf,) = re.findall(r"```ini\n(.*?)```", doc, re.S)
    (conf_file := tmp_path / "drvfs.conf").write_text(drvfs_conf)
    conf = bootconf.load(str(conf_file))
    assert (conf.root, conf.server, conf.export("Scratch").enabled) == (
        "/mnt", "tcp:10.0.2.100:564", False)  # fmt: skip


def test_the_backend_the_file_names_makes_the_options(place: Path) -> None:
    """The parser's per-export options are the backend's: the one the file names, unless
    --backend names another."""
    cfg = _write_config(place)
    cfg.write_text(f'backend = "none-such"\n{cfg.read_text()}')
    with pytest.raises(SystemExit, match="no backend named 'none-such' is installed"):
        cli.parse(["--config", str(cfg)])
    args = cli.parse(["--config", str(cfg), "--backend", "volfs"])
    assert [(e.name, e.options) for e in args.export] == [
        ("C", {}), ("D", {"read_only": True}), ("E", {"metadata": True})]  # fmt: skip
