"""Every 9P2000.L message, declared once with `construct`; the same declaration builds and parses.

A message on the wire is ``size[4] type[1] tag[2] body``. Each `Kind` below
declares one message type and its body; `Message` is one decoded or
to-be-encoded message; `decode` and `Message.encode` are the only codec entry
points, and a frame that does not parse exactly raises `ProtocolError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from construct import (
    Adapter,
    Construct,
    ConstructError,
    GreedyRange,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    PrefixedArray,
    Struct,
    Terminated,
)
from construct.core import stream_read, stream_write

from .constants import HEADER_SIZE, NOTAG


class ProtocolError(Exception):
    """A frame that breaks the protocol; the connection that sent it is closed."""


class Qid(NamedTuple):
    """The server's identity of a file: type, version, path (unique per file)."""

    type: int
    version: int
    path: int


class _Utf8(Adapter):  # type: ignore[misc]
    """9P string: ``len[2]`` + bytes; bytes that are not UTF-8 round-trip as surrogates."""

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        return obj.decode("utf-8", "surrogateescape")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        return obj.encode("utf-8", "surrogateescape")


class _Counted(Construct):  # type: ignore[misc]
    """``len[N]`` + that many bytes; a short read is an error (compiled Prefixed misses it)."""

    def __init__(self, length: struct.Struct) -> None:
        super().__init__()
        self.length = length

    def _parse(self, stream: Any, context: Any, path: Any) -> bytes:
        (n,) = self.length.unpack(stream_read(stream, self.length.size, path))
        data: bytes = stream_read(stream, n, path)
        return data

    def _build(self, obj: bytes, stream: Any, context: Any, path: Any) -> bytes:
        stream_write(stream, self.length.pack(len(obj)) + obj, self.length.size + len(obj), path)
        return obj


class _QidAdapter(Adapter):  # type: ignore[misc]
    def _decode(self, obj: Any, context: Any, path: Any) -> Qid:
        return Qid(obj.type, obj.version, obj.path)

    def _encode(self, obj: Qid, context: Any, path: Any) -> dict[str, int]:
        return {"type": obj.type, "version": obj.version, "path": obj.path}


u8, u16, u32, u64 = Int8ul, Int16ul, Int32ul, Int64ul
string = _Utf8(_Counted(struct.Struct("<H")))
data = _Counted(struct.Struct("<I"))
qid = _QidAdapter(Struct("type" / u8, "version" / u32, "path" / u64))
names = PrefixedArray(u16, string)
qids = PrefixedArray(u16, qid)

#: One directory entry inside Rreaddir's data.
dirent = Struct("qid" / qid, "offset" / u64, "type" / u8, "name" / string)
_dirents = Struct("entries" / GreedyRange(dirent), Terminated).compile()


class Kind:
    """One message type: its name, type number and body layout."""

    def __init__(self, name: str, id: int, *fields: Construct) -> None:
        self.name = name
        self.id = id
        self.layout = fields
        self.fields: tuple[str, ...] = tuple(f.name for f in fields)
        self.body = Struct(*fields, Terminated).compile()

    def __call__(self, tag: int = NOTAG, **fields: Any) -> Message:
        return Message(self, tag, fields)

    def __repr__(self) -> str:
        return self.name


KINDS: dict[int, Kind] = {}


def _declare(name: str, id: int, *fields: Construct) -> Kind:
    kind = Kind(name, id, *fields)
    assert id not in KINDS, name
    KINDS[id] = kind
    return kind


# The whole protocol, in type-number order.  R-messages are their T-message + 1.
Rlerror = _declare("Rlerror", 7, "ecode" / u32)
Tstatfs = _declare("Tstatfs", 8, "fid" / u32)
Rstatfs = _declare(
    "Rstatfs", 9,
    "type" / u32, "bsize" / u32, "blocks" / u64, "bfree" / u64, "bavail" / u64,
    "files" / u64, "ffree" / u64, "fsid" / u64, "namelen" / u32,
)  # fmt: skip
Tlopen = _declare("Tlopen", 12, "fid" / u32, "flags" / u32)
Rlopen = _declare("Rlopen", 13, "qid" / qid, "iounit" / u32)
Tlcreate = _declare(
    "Tlcreate", 14, "fid" / u32, "name" / string, "flags" / u32, "mode" / u32, "gid" / u32
)
Rlcreate = _declare("Rlcreate", 15, "qid" / qid, "iounit" / u32)
Tsymlink = _declare("Tsymlink", 16, "fid" / u32, "name" / string, "symtgt" / string, "gid" / u32)
Rsymlink = _declare("Rsymlink", 17, "qid" / qid)
Tmknod = _declare(
    "Tmknod", 18,
    "dfid" / u32, "name" / string, "mode" / u32, "major" / u32, "minor" / u32, "gid" / u32,
)  # fmt: skip
Rmknod = _declare("Rmknod", 19, "qid" / qid)
Trename = _declare("Trename", 20, "fid" / u32, "dfid" / u32, "name" / string)
Rrename = _declare("Rrename", 21)
Treadlink = _declare("Treadlink", 22, "fid" / u32)
Rreadlink = _declare("Rreadlink", 23, "target" / string)
Tgetattr = _declare("Tgetattr", 24, "fid" / u32, "request_mask" / u64)
Rgetattr = _declare(
    "Rgetattr", 25,
    "valid" / u64, "qid" / qid, "mode" / u32, "uid" / u32, "gid" / u32,
    "nlink" / u64, "rdev" / u64, "size" / u64, "blksize" / u64, "blocks" / u64,
    "atime_sec" / u64, "atime_nsec" / u64, "mtime_sec" / u64, "mtime_nsec" / u64,
    "ctime_sec" / u64, "ctime_nsec" / u64, "btime_sec" / u64, "btime_nsec" / u64,
    "gen" / u64, "data_version" / u64,
)  # fmt: skip
Tsetattr = _declare(
    "Tsetattr", 26,
    "fid" / u32, "valid" / u32, "mode" / u32, "uid" / u32, "gid" / u32, "size" / u64,
    "atime_sec" / u64, "atime_nsec" / u64, "mtime_sec" / u64, "mtime_nsec" / u64,
)  # fmt: skip
Rsetattr = _declare("Rsetattr", 27)
Txattrwalk = _declare("Txattrwalk", 30, "fid" / u32, "newfid" / u32, "name" / string)
Rxattrwalk = _declare("Rxattrwalk", 31, "size" / u64)
Txattrcreate = _declare(
    "Txattrcreate", 32, "fid" / u32, "name" / string, "attr_size" / u64, "flags" / u32
)
Rxattrcreate = _declare("Rxattrcreate", 33)
Treaddir = _declare("Treaddir", 40, "fid" / u32, "offset" / u64, "count" / u32)
Rreaddir = _declare("Rreaddir", 41, "data" / data)
Tfsync = _declare("Tfsync", 50, "fid" / u32, "datasync" / u32)
Rfsync = _declare("Rfsync", 51)
Tlock = _declare(
    "Tlock", 52,
    "fid" / u32, "type" / u8, "flags" / u32, "start" / u64, "length" / u64,
    "proc_id" / u32, "client_id" / string,
)  # fmt: skip
Rlock = _declare("Rlock", 53, "status" / u8)
Tgetlock = _declare(
    "Tgetlock", 54,
    "fid" / u32, "type" / u8, "start" / u64, "length" / u64, "proc_id" / u32,
    "client_id" / string,
)  # fmt: skip
Rgetlock = _declare(
    "Rgetlock", 55,
    "type" / u8, "start" / u64, "length" / u64, "proc_id" / u32, "client_id" / string,
)  # fmt: skip
Tlink = _declare("Tlink", 70, "dfid" / u32, "fid" / u32, "name" / string)
Rlink = _declare("Rlink", 71)
Tmkdir = _declare("Tmkdir", 72, "dfid" / u32, "name" / string, "mode" / u32, "gid" / u32)
Rmkdir = _declare("Rmkdir", 73, "qid" / qid)
Trenameat = _declare(
    "Trenameat", 74,
    "olddirfid" / u32, "oldname" / string, "newdirfid" / u32, "newname" / string,
)  # fmt: skip
Rrenameat = _declare("Rrenameat", 75)
Tunlinkat = _declare("Tunlinkat", 76, "dirfid" / u32, "name" / string, "flags" / u32)
Runlinkat = _declare("Runlinkat", 77)
Tversion = _declare("Tversion", 100, "msize" / u32, "version" / string)
Rversion = _declare("Rversion", 101, "msize" / u32, "version" / string)
Tauth = _declare("Tauth", 102, "afid" / u32, "uname" / string, "aname" / string, "n_uname" / u32)
Rauth = _declare("Rauth", 103, "aqid" / qid)
Tattach = _declare(
    "Tattach", 104,
    "fid" / u32, "afid" / u32, "uname" / string, "aname" / string, "n_uname" / u32,
)  # fmt: skip
Rattach = _declare("Rattach", 105, "qid" / qid)
Tflush = _declare("Tflush", 108, "oldtag" / u16)
Rflush = _declare("Rflush", 109)
Twalk = _declare("Twalk", 110, "fid" / u32, "newfid" / u32, "wnames" / names)
Rwalk = _declare("Rwalk", 111, "qids" / qids)
Tread = _declare("Tread", 116, "fid" / u32, "offset" / u64, "count" / u32)
Rread = _declare("Rread", 117, "data" / data)
Twrite = _declare("Twrite", 118, "fid" / u32, "offset" / u64, "data" / data)
Rwrite = _declare("Rwrite", 119, "count" / u32)
Tclunk = _declare("Tclunk", 120, "fid" / u32)
Rclunk = _declare("Rclunk", 121)
Tremove = _declare("Tremove", 122, "fid" / u32)
Rremove = _declare("Rremove", 123)

_header = struct.Struct("<IBH")


class Message:
    """One message: its kind, tag and fields (read as attributes: ``msg.fid``)."""

    __slots__ = ("fields", "kind", "tag")

    def __init__(self, kind: Kind, tag: int, fields: dict[str, Any]) -> None:
        self.kind = kind
        self.tag = tag
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"{self.kind.name} has no field {name!r}") from None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message)
            and (self.kind, self.tag) == (other.kind, other.tag)
            and {k: self.fields[k] for k in self.kind.fields}
            == {k: other.fields[k] for k in other.kind.fields}
        )

    def __hash__(self) -> int:
        return hash((self.kind.id, self.tag))

    def encode(self) -> bytes:
        """The whole frame, size prefix included."""
        try:
            body: bytes = self.kind.body.build(self.fields)
        except (ConstructError, KeyError, TypeError, ValueError, struct.error) as e:
            raise ValueError(f"cannot encode {self.kind.name}: {e}") from e
        return _header.pack(HEADER_SIZE + len(body), self.kind.id, self.tag) + body

    def __str__(self) -> str:
        """The conventional trace form: ``Twalk tag 1 fid 0 newfid 1 wnames ['a']``."""
        parts = [self.kind.name, "tag", str(self.tag)]
        for name in self.kind.fields:
            parts += [name, _show(self.fields[name])]
        return " ".join(parts)

    __repr__ = __str__


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Qid):
        return f"({value.type:#x} {value.version} {value.path})"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def frame_size(header: bytes | bytearray) -> int:
    """The total size announced by the first four bytes of a frame."""
    return int.from_bytes(header[:4], "little")


def decode(frame: bytes | bytearray | memoryview) -> Message:
    """Parse one whole frame (size prefix included); raise ProtocolError if malformed."""
    if len(frame) < HEADER_SIZE:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than the 7-byte header")
    size, type_, tag = _header.unpack_from(frame)
    if size != len(frame):
        raise ProtocolError(f"frame says {size} bytes but holds {len(frame)}")
    kind = KINDS.get(type_)
    if kind is None:
        raise ProtocolError(f"unknown message type {type_}")
    try:
        body = kind.body.parse(bytes(frame[HEADER_SIZE:]))
    except (ConstructError, UnicodeError, struct.error) as e:
        raise ProtocolError(f"malformed {kind.name} body: {e}") from e
    return Message(kind, tag, {name: body[name] for name in kind.fields})


def encode_dirents(entries: list[tuple[Qid, int, int, str]]) -> bytes:
    """Pack (qid, offset, type, name) entries as Rreaddir data."""
    build: Callable[[dict[str, Any]], bytes] = dirent.build
    return b"".join(build({"qid": q, "offset": o, "type": t, "name": n}) for q, o, t, n in entries)


def dirent_size(name: str) -> int:
    """Bytes one directory entry takes in Rreaddir data."""
    return 13 + 8 + 1 + 2 + len(name.encode("utf-8", "surrogateescape"))


def decode_dirents(blob: bytes) -> list[tuple[Qid, int, int, str]]:
    """Unpack Rreaddir data into (qid, offset, type, name) entries."""
    try:
        entries = _dirents.parse(blob).entries
    except (ConstructError, UnicodeError, struct.error) as e:
        raise ProtocolError(f"malformed directory entries: {e}") from e
    return [(e.qid, e.offset, e.type, e.name) for e in entries]
