"""Write the fast codec, `ninep/_generated_codec.py`, from the declarations of `ninep.messages`.

For each message an encoder (the whole frame) and a decoder (its body), and for
each payload (`messages.PAYLOADS`: the entries of Rreaddir's, Rreaddirattr's and
Rnotify's data) an encoder and a decoder of its list of entries. Runs of
fixed-size fields (integers, qids, the Attr/SetAttr/StatFs records, and the
length of a string or data) become one `struct.Struct` each. The `construct`
codec of the same declarations stays the reference (tests/test_messages.py);
tests/test_gencodec.py fails when the file is not what this writes.

    python -m ninep.gencodec           # write it
    python -m ninep.gencodec --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path
from typing import Any

from construct import Construct, FocusedSeq

from . import messages as m
from .fastcodec import HEADER

#: The structs the generated module takes from `ninep.fastcodec` rather than declare again.
_SHARED = {"H": "U16", "I": "U32", HEADER.format.lstrip("<"): "HEADER"}

TARGET = Path(__file__).with_name("_generated_codec.py")
COMMAND = "python -m ninep.gencodec"
_INTS = {id(m.u8): "B", id(m.u16): "H", id(m.u32): "I", id(m.u64): "Q"}
_UTF8 = '"utf-8", "surrogateescape"'


def _array(con: Construct) -> tuple[Construct, Construct] | None:
    """The count's and the element's construct of a `PrefixedArray`, else None."""
    if isinstance(con, FocusedSeq) and [s.name for s in con.subcons] == ["count", "items"]:
        return con.subcons[0].subcon.subcon, con.subcons[1].subcon.subcon
    return None


class _Module:
    """The generated module's shared parts: its structs and its list helpers."""

    def __init__(self) -> None:
        self.structs: dict[str, str] = dict(_SHARED)  # format -> name
        self.helpers: list[str] = []
        self._arrays: dict[int, str] = {}  # construct id -> the helpers' suffix

    def struct(self, fmt: str) -> tuple[str, int]:
        """The name and size of the struct of format `fmt` (little-endian)."""
        name = self.structs.setdefault(fmt, f"S_{fmt}")
        return name, struct.calcsize("<" + fmt)

    def array(self, con: Construct) -> str:
        """The suffix of `enc_`/`dec_` helpers of list construct `con`, made once."""
        if id(con) in self._arrays:
            return self._arrays[id(con)]
        array = _array(con)
        assert array is not None, f"no fast codec for {con}"
        count, element = array
        counter, size = self.struct(_INTS[id(count)])
        plan = _Plan(self, prefix="")
        value = plan.field(element, "e")
        plan.flush()
        kind = "str" if element is m.string else "qid" if element is m.qid else element.cls.__name__
        suffix = f"{kind.lower()}s"
        self.helpers.append(
            f"def enc_{suffix}(items: list[Any]) -> bytes:\n"
            f"    out = [{counter}.pack(len(items))]\n"
            "    for e in items:\n"
            + plan.encoding("        ", "out.append({})")
            + '    return b"".join(out)\n\n\n'
            f"def dec_{suffix}(buf: bytes, off: int) -> tuple[list[Any], int]:\n"
            + plan.aliases("    ")
            + f"    (n,) = {counter}.unpack_from(buf, off)\n"
            f"    off += {size}  # {counter}.size\n"
            "    out = []\n"
            "    for _ in range(n):\n"
            + plan.decoding("        ")
            + f"        out.append({value})\n"
            "    return out, off\n"
        )
        self._arrays[id(con)] = suffix
        return suffix


class _Plan:
    """The generated code of one sequence of fields, built field by field: the encoder's
    statements and parts (bytes to concatenate), the decoder's statements reading `buf`
    from `off`."""

    def __init__(self, module: _Module, prefix: str) -> None:
        self.module = module
        self.prefix = prefix  # of the classes decoded values are made of ("m." or aliases)
        self.classes: dict[str, None] = {}  # those used, in order
        self.fmt = ""  # the fixed run being collected
        self.packed: list[str] = []
        self.unpacked: list[str] = []
        self.enc: list[str] = []
        self.parts: list[str] = []
        self.dec: list[str] = []
        self.n = 0

    def _local(self, prefix: str = "v") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _make(self, cls: type, args: str) -> str:
        self.classes[cls.__name__] = None
        return f"{self.prefix}{cls.__name__}({args})"

    def flush(self) -> None:
        """End the current run of fixed-size fields."""
        if not self.fmt:
            return
        name, size = self.module.struct(self.fmt)
        self.parts.append(f"{name}.pack({', '.join(self.packed)})")
        names = f"({self.unpacked[0]},)" if len(self.unpacked) == 1 else ", ".join(self.unpacked)
        self.dec.append(f"{names} = {name}.unpack_from(buf, off)")
        self.dec.append(f"off += {size}  # {name}.size")
        self.fmt, self.packed, self.unpacked = "", [], []

    def integer(self, code: str, expr: str) -> str:
        """An integer of struct code `code` in the current run; its decoded local."""
        local = self._local()
        self.fmt += code
        self.packed.append(expr)
        self.unpacked.append(local)
        return local

    def field(self, con: Construct, expr: str) -> str:
        """Plan the field of construct `con` read from `expr` when encoding; the
        expression of its decoded value."""
        if id(con) in _INTS:
            return self.integer(_INTS[id(con)], expr)
        if con is m.qid:
            parts = [self.integer(_INTS[id(sub.subcon)], f"{expr}[{i}]")
                     for i, sub in enumerate(con.subcon.subcons)]  # fmt: skip
            return self._make(m.Qid, ", ".join(parts))
        if isinstance(con, m._Record):  # a dataclass: its own fields, inline, in order
            values = [self.field(sub.subcon, f"{expr}.{sub.name}") for sub in con.subcon.subcons]
            return self._make(con.cls, ", ".join(values))
        if con is m.string or con is m.data:  # the length joins the run, then the bytes
            raw = expr
            if con is m.string:
                raw = self._local("b")
                self.enc.append(f"{raw} = {expr}.encode({_UTF8})")
            count = self.integer(_INTS[id(m.u16 if con is m.string else m.u32)], f"len({raw})")
            self.flush()
            self.parts.append(raw)
            local = self._local()
            value = f"buf[off:end].decode({_UTF8})" if con is m.string else "buf[off:end]"
            self.dec += [f"end = off + {count}", "if end > len(buf):", "    raise Short",
                         f"{local} = {value}", "off = end"]  # fmt: skip
            return local
        suffix = self.module.array(con)
        self.flush()
        self.parts.append(f"enc_{suffix}({expr})")
        local = self._local()
        self.dec.append(f"{local}, off = dec_{suffix}(buf, off)")
        return local

    def encoding(self, indent: str, sink: str) -> str:
        """The encoder's statements, then `sink` of the bytes (its `{}`)."""
        body = " + ".join(self.parts) if self.parts else 'b""'
        return "".join(f"{indent}{line}\n" for line in [*self.enc, sink.format(body)])

    def decoding(self, indent: str) -> str:
        return "".join(f"{indent}{line}\n" for line in self.dec)

    def aliases(self, indent: str) -> str:
        """Local names of the classes the decoder makes (a global lookup less each)."""
        if not self.classes:
            return ""
        names = list(self.classes)
        return f"{indent}{', '.join(names)} = {', '.join(f'm.{n}' for n in names)}\n"


def _message(module: _Module, kind: m.Kind) -> str:
    plan = _Plan(module, prefix="m.")
    values = {f.name: plan.field(f.subcon, f"msg.{f.name}") for f in kind.layout}
    if plan.parts:  # a frame of variable size: its body, then the header
        plan.flush()
        encode = plan.encoding("    ", "body = {}") + (
            f"    return HEADER.pack({HEADER.size} + len(body), {kind.id}, msg.tag) + body\n"
        )
    else:  # of fixed size: one struct, the header's fields first
        frame, size = module.struct(HEADER.format.lstrip("<") + plan.fmt)
        args = ", ".join([str(size), str(kind.id), "msg.tag", *plan.packed])
        encode = f"    return {frame}.pack({args})\n"
        plan.flush()
    name = kind.__name__
    call = ", ".join(["tag", *(f"{k}={v}" for k, v in values.items())])
    return (
        f"def encode_{name}(msg: m.{name}) -> bytes:\n" + encode + "\n\n"
        f"def decode_{name}(buf: bytes, tag: int) -> m.{name}:\n"
        "    off = 0\n" + plan.decoding("    ") + "    if off != len(buf):\n"
        "        raise Short\n"
        f"    return m.{name}({call})\n"
    )


def _payload(module: _Module, payload: m.Payload[Any]) -> str:
    plan = _Plan(module, prefix="")
    values = [plan.field(f.subcon, f"e_{f.name}") for f in payload.layout]
    plan.flush()
    name = payload.cls.__name__
    plan.classes[name] = None
    entry = ", ".join(f"e_{f.name}" for f in payload.layout)
    return (
        f"def encode_{name}(entries: Iterable[tuple[Any, ...]]) -> bytes:\n"
        "    out: list[bytes] = []\n"
        f"    for {entry} in entries:\n"
        + plan.encoding("        ", "out.append({})")
        + '    return b"".join(out)\n\n\n'
        f"def decode_{name}(buf: bytes) -> list[m.{name}]:\n"
        + plan.aliases("    ")
        + f"    out: list[m.{name}] = []\n"
        "    off = 0\n"
        "    while off < len(buf):\n"
        + plan.decoding("        ")
        + f"        out.append({name}({', '.join(values)}))\n"
        "    return out\n"
    )


_HEAD = f'''\
# Generated by `{COMMAND}` from the declarations of ninep/messages.py: do not edit.
"""The fast codec: every message's and payload's encoder and decoder (see `ninep.gencodec`).

Imported by `ninep.messages`, which binds them to its classes and payloads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from . import messages as m
from .fastcodec import HEADER, U16, U32, Short

'''


def source() -> str:
    """The text of the generated module, from the declarations as they are."""
    module = _Module()
    messages = [_message(module, kind) for kind in m.KINDS.values()]
    payloads = [_payload(module, p) for p in m.PAYLOADS]
    structs = "".join(f'{name} = struct.Struct("<{fmt}")\n'
                      for fmt, name in module.structs.items() if fmt not in _SHARED)  # fmt: skip
    names = [k.__name__ for k in m.KINDS.values()], [p.cls.__name__ for p in m.PAYLOADS]
    table, ptable = ("".join(f'    "{n}": (encode_{n}, decode_{n}),\n' for n in each)
                     for each in names)  # fmt: skip
    return (
        _HEAD
        + structs
        + "\n\n"
        + "\n\n".join(module.helpers + messages + payloads)
        + "\n\n#: Each message's (encoder, decoder), by class name.\n"
        "MESSAGES: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes, int], m.Message]]]"
        " = {\n" + table + "}\n"
        "#: Each payload's (encoder, decoder), by class name.\n"
        "PAYLOADS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], list[Any]]]] = {\n"
        + ptable
        + "}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Write the generated module, or with --check say whether it is current."""
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = p.parse_args(argv)
    text = source()
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
