"""The fast codec: each message's encoder and decoder generated from its one declaration.

`ninep.messages` declares every message once; from the same layout this module
writes, for each message type, a Python function that packs or unpacks the
whole frame with a few `struct` calls: runs of fixed-size fields (integers,
qids, the Attr/SetAttr/StatFs records) become one `struct.Struct`, and only
strings, data and lists are handled one by one. The `construct` codec stays
the reference: tests/test_messages.py proves the two equal on every message
and on malformed frames. `Message.encode` and `messages.decode` use this one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from construct import Construct

if TYPE_CHECKING:
    from .messages import Message

Encoder = Callable[["Message"], bytes]
Decoder = Callable[[bytes, int], "Message"]

_HEADER = struct.Struct("<IBH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_QID = struct.Struct("<BIQ")


class Short(Exception):
    """The body ends before its fields do, or goes on after them."""


# ---- the variable-size wire types ----


def _enc_str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogateescape")
    return _U16.pack(len(b)) + b


def _dec_str(buf: bytes, off: int) -> tuple[str, int]:
    (n,) = _U16.unpack_from(buf, off)
    end = off + 2 + n
    if end > len(buf):
        raise Short
    return buf[off + 2 : end].decode("utf-8", "surrogateescape"), end


def _enc_data(b: bytes) -> bytes:
    return _U32.pack(len(b)) + bytes(b)


def _dec_data(buf: bytes, off: int) -> tuple[bytes, int]:
    (n,) = _U32.unpack_from(buf, off)
    end = off + 4 + n
    if end > len(buf):
        raise Short
    return buf[off + 4 : end], end


def _enc_names(names: list[str]) -> bytes:
    return _U16.pack(len(names)) + b"".join(_enc_str(n) for n in names)


def _dec_names(buf: bytes, off: int) -> tuple[list[str], int]:
    (n,) = _U16.unpack_from(buf, off)
    off += 2
    out = []
    for _ in range(n):
        name, off = _dec_str(buf, off)
        out.append(name)
    return out, off


def _enc_qids(qids: list[Any]) -> bytes:
    return _U16.pack(len(qids)) + b"".join(_QID.pack(*q) for q in qids)


def _dec_qids(buf: bytes, off: int, qid: Callable[..., Any]) -> tuple[list[Any], int]:
    (n,) = _U16.unpack_from(buf, off)
    off += 2
    out = []
    for _ in range(n):
        out.append(qid(*_QID.unpack_from(buf, off)))
        off += 13
    return out, off


# ---- generation ----


class _Plan:
    """The generated source of one message's encoder and decoder, built field by field."""

    def __init__(self, wire: dict[int, str], qid: Construct, variable: dict[int, str]) -> None:
        self.wire, self.qid, self.variable = wire, qid, variable
        self.fmt = ""  # the fixed run being collected
        self.enc_values: list[str] = []
        self.dec_names: list[str] = []  # the locals that run unpacks into
        self.enc: list[str] = []  # lines of the encoder: expressions appended to parts
        self.dec: list[str] = []  # lines of the decoder
        self.structs: dict[str, struct.Struct] = {}
        self.n = 0

    def _local(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def flush(self) -> None:
        """End the current run of fixed-size fields."""
        if not self.fmt:
            return
        name = f"S{len(self.structs)}"
        s = self.structs[name] = struct.Struct("<" + self.fmt)
        self.enc.append(f"{name}.pack({', '.join(self.enc_values)})")
        self.dec.append(f"{', '.join(self.dec_names)}, = {name}.unpack_from(buf, off)")
        self.dec.append(f"off += {s.size}")
        self.fmt, self.enc_values, self.dec_names = "", [], []

    def field(self, con: Construct, expr: str) -> str:
        """Plan one field read from `expr` when encoding; the decoder expression of its value."""
        key = id(con)
        if key in self.wire:
            return self.field_int(self.wire[key], expr)
        if con is self.qid:
            parts = [self.field_int("B", f"{expr}[0]"), self.field_int("I", f"{expr}[1]"),
                     self.field_int("Q", f"{expr}[2]")]  # fmt: skip
            return f"Qid({', '.join(parts)})"
        if hasattr(con, "cls"):  # a record: its own fields, inline
            values = [
                f"{sub.name}={self.field(sub.subcon, f'{expr}.{sub.name}')}"
                for sub in con.subcon.subcons
            ]
            return f"{con.cls.__name__}({', '.join(values)})"
        kind = self.variable[key]
        self.flush()
        local = self._local()
        self.enc.append(f"_enc_{kind}({expr})")
        extra = ", Qid" if kind == "qids" else ""
        self.dec.append(f"{local}, off = _dec_{kind}(buf, off{extra})")
        return local

    def field_int(self, code: str, expr: str) -> str:
        """Plan an integer of struct code `code` in the current fixed run."""
        local = self._local()
        self.fmt += code
        self.enc_values.append(expr)
        self.dec_names.append(local)
        return local


def generate(
    cls: type[Message],
    wire: dict[int, str],
    qid: Construct,
    variable: dict[int, str],
    namespace: dict[str, Any],
) -> tuple[Encoder, Decoder]:
    """The encoder and decoder of message class `cls`, from its layout.

    `wire` maps each integer construct (by id) to its struct code, `qid` is the
    qid construct, `variable` maps each variable-size construct (by id) to its
    kind (str, data, names, qids); `namespace` provides the record classes and Qid.
    """
    plan = _Plan(wire, qid, variable)
    values = {f.name: plan.field(f.subcon, f"m.{f.name}") for f in cls.layout}
    plan.flush()
    name = cls.__name__
    body = " + ".join(plan.enc) if plan.enc else "b''"
    enc_src = (
        f"def encode_{name}(m):\n"
        f"    body = {body}\n"
        f"    return HEADER.pack(7 + len(body), {cls.id}, m.tag) + body\n"
    )
    call = ", ".join(f"{k}={v}" for k, v in values.items())
    dec_lines = ["    off = 0", *(f"    {line}" for line in plan.dec)]
    dec_src = (
        f"def decode_{name}(buf, tag):\n"
        + "\n".join(dec_lines)
        + "\n    if off != len(buf):\n        raise Short\n"
        + f"    return cls(tag, {call})\n"
    )
    scope: dict[str, Any] = {
        **namespace,
        **plan.structs,
        "cls": cls,
        "HEADER": _HEADER,
        "Short": Short,
        **{k: v for k, v in globals().items() if k.startswith(("_enc_", "_dec_"))},
    }
    exec(enc_src, scope)
    exec(dec_src, scope)
    return scope[f"encode_{name}"], scope[f"decode_{name}"]


def record_codec(
    con: Construct, wire: dict[int, str], qid: Construct, namespace: dict[str, Any]
) -> tuple[int, Callable[[Any], bytes], Callable[[bytes, int], Any]]:
    """The size, packer and unpacker (of a buffer at an offset) of fixed-size record `con`."""
    plan = _Plan(wire, qid, {})
    value = plan.field(con, "r")
    plan.flush()
    assert len(plan.structs) == 1, "a record of fixed size"
    src = (
        f"def pack(r):\n    return {plan.enc[0]}\n"
        f"def unpack(buf, off):\n    {plan.dec[0]}\n    return {value}\n"
    )
    scope: dict[str, Any] = {**namespace, **plan.structs}
    exec(src, scope)
    return plan.structs["S0"].size, scope["pack"], scope["unpack"]


# ---- directory entries (Rreaddir's data) ----

_DIRENT = struct.Struct("<BIQQBH")  # qid, offset, type, name length


def encode_dirents(entries: list[tuple[Any, int, int, str]]) -> bytes:
    """Pack (qid, offset, type, name) entries as Rreaddir data."""
    out = []
    for q, offset, type_, name in entries:
        b = name.encode("utf-8", "surrogateescape")
        out.append(_DIRENT.pack(q[0], q[1], q[2], offset, type_, len(b)) + b)
    return b"".join(out)


def decode_dirents(blob: bytes, qid: Callable[..., Any]) -> list[tuple[Any, int, int, str]]:
    """Unpack Rreaddir data into (qid, offset, type, name) entries; Short if malformed."""
    out, off = [], 0
    while off < len(blob):
        qt, qv, qp, offset, type_, n = _DIRENT.unpack_from(blob, off)
        off += _DIRENT.size + n
        if off > len(blob):
            raise Short
        name = blob[off - n : off].decode("utf-8", "surrogateescape")
        out.append((qid(qt, qv, qp), offset, type_, name))
    return out


def encode_dirent_attrs(
    entries: list[tuple[Any, int, int, str, Any]], pack: Callable[[Any], bytes]
) -> bytes:
    """Pack (qid, offset, type, name, attr) entries as Rreaddirattr data (`pack`: the attr's)."""
    out = []
    for q, offset, type_, name, attr in entries:
        b = name.encode("utf-8", "surrogateescape")
        out.append(_DIRENT.pack(q[0], q[1], q[2], offset, type_, len(b)) + b + pack(attr))
    return b"".join(out)


def decode_dirent_attrs(
    blob: bytes, qid: Callable[..., Any], size: int, unpack: Callable[[bytes, int], Any]
) -> list[tuple[Any, int, int, str, Any]]:
    """Unpack Rreaddirattr data (`size`, `unpack`: the attr record's); Short if malformed."""
    out, off = [], 0
    while off < len(blob):
        qt, qv, qp, offset, type_, n = _DIRENT.unpack_from(blob, off)
        off += _DIRENT.size + n
        if off + size > len(blob):
            raise Short
        name = blob[off - n : off].decode("utf-8", "surrogateescape")
        out.append((qid(qt, qv, qp), offset, type_, name, unpack(blob, off)))
        off += size
    return out


# ---- a reply sent in parts ----

_U32 = struct.Struct("<I")


def data_parts(msg: Any) -> list[Any]:
    """The frame of `msg`, a message whose last field is its `data`, in two parts to send
    one after the other: all that precedes the data, and the data where it lies (not
    copied into the frame)."""
    data = msg.data
    msg.data = b""
    try:
        head = bytearray(msg.encode())
    finally:
        msg.data = data
    _U32.pack_into(head, 0, len(head) + len(data))  # the frame's size
    _U32.pack_into(head, len(head) - 4, len(data))  # the data's count
    return [head, data]
