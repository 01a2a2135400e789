"""Every 9P2000.L message, declared once: a typed class whose annotations give the codec.

A message on the wire is ``size[4] type[1] tag[2] body``. Each class below
declares one message type (`@message(number)`): its annotated fields are both
its Python attributes (checked by mypy) and its body's layout (`U32` is an
int encoded as a little-endian u32, and so on), from which the `construct`
codec is compiled. `decode` and `Message.encode` are the only codec entry
points, and a frame that does not parse exactly raises `ProtocolError`.
A T-message is a `Request[R]`: `R` is its answer unless the answer is Rlerror.
The payloads carried in a message's data (directory entries, changes) are
declared the same way, as NamedTuples (`Payload`). The codec used is generated
from these declarations (`ninep.gencodec` writes `ninep._generated_codec`);
the `construct` one is its reference.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    ClassVar,
    Generic,
    NamedTuple,
    TypeVar,
    dataclass_transform,
    get_type_hints,
)

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

from . import _generated_codec as _codec  # it uses this module's classes only when called
from . import fastcodec
from .constants import HEADER_SIZE, NOTAG
from .fastcodec import HEADER, Short
from .traits import Traits, attrs_made, opens_for_write


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
string = _Utf8(_Counted(fastcodec.U16))
data = _Counted(fastcodec.U32)
qid = _QidAdapter(Struct("type" / u8, "version" / u32, "path" / u64))
names = PrefixedArray(u16, string)
qids = PrefixedArray(u16, qid)


# ---- the wire types: a field's annotation names its Python type and its encoding ----

U8 = Annotated[int, u8]
U16 = Annotated[int, u16]
U32 = Annotated[int, u32]
U64 = Annotated[int, u64]
Str = Annotated[str, string]
Data = Annotated[bytes, data]
QidField = Annotated[Qid, qid]
Names = Annotated[list[str], names]
Qids = Annotated[list[Qid], qids]


def _layout(cls: type) -> tuple[Construct, ...]:
    """The construct fields of dataclass or NamedTuple `cls`, from its annotations (`tag`
    is the header's)."""
    hints = get_type_hints(cls, include_extras=True)
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
    else:  # a NamedTuple
        names = list(cls._fields)  # type: ignore[attr-defined]
    out = []
    for name in names:
        if name == "tag":
            continue
        wire = [a for a in getattr(hints[name], "__metadata__", ()) if isinstance(a, Construct)]
        assert len(wire) == 1, f"{cls.__name__}.{name} has no wire type"
        out.append(name / wire[0])
    return tuple(out)


class _Record(Adapter):  # type: ignore[misc]
    """A dataclass whose fields lie inline on the wire (Rgetattr's attributes, ...)."""

    def __init__(self, cls: type) -> None:
        super().__init__(Struct(*_layout(cls)))
        self.cls = cls
        self.names = tuple(f.name for f in dataclasses.fields(cls))

    def _decode(self, obj: Any, context: Any, path: Any) -> Any:
        return self.cls(**{n: obj[n] for n in self.names})

    def _encode(self, obj: Any, context: Any, path: Any) -> dict[str, Any]:
        return {n: getattr(obj, n) for n in self.names}


# ---- records that backends and clients use as they are ----


@dataclass(slots=True)
class Attr:
    """Attributes of a file: the body of Rgetattr."""

    valid: U64
    qid: QidField
    mode: U32
    uid: U32
    gid: U32
    nlink: U64
    rdev: U64
    size: U64
    blksize: U64
    blocks: U64
    atime_sec: U64
    atime_nsec: U64
    mtime_sec: U64
    mtime_nsec: U64
    ctime_sec: U64
    ctime_nsec: U64
    btime_sec: U64 = 0
    btime_nsec: U64 = 0
    gen: U64 = 0
    data_version: U64 = 0

    @classmethod
    def absent(cls) -> Attr:
        """What an extension answers for attributes it could not read: valid 0, all zero."""
        return cls(0, Qid(0, 0, 0), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class SetAttr:
    """What a Tsetattr changes: which fields (`valid`, SetattrMask bits) and their values."""

    valid: U32
    mode: U32 = 0
    uid: U32 = 0
    gid: U32 = 0
    size: U64 = 0
    atime_sec: U64 = 0
    atime_nsec: U64 = 0
    mtime_sec: U64 = 0
    mtime_nsec: U64 = 0


@dataclass(frozen=True, slots=True)
class StatFs:
    """Filesystem figures: the body of Rstatfs."""

    type: U32
    bsize: U32
    blocks: U64
    bfree: U64
    bavail: U64
    files: U64
    ffree: U64
    fsid: U64
    namelen: U32


_attr = _Record(Attr)
AttrRecord = Annotated[Attr, _attr]
SetAttrRecord = Annotated[SetAttr, _Record(SetAttr)]
StatFsRecord = Annotated[StatFs, _Record(StatFs)]


# ---- messages ----


@dataclass(eq=False, slots=True)
class Message:
    """One message: its tag and its fields (the class is its kind: ``type(msg)``)."""

    tag: int = NOTAG

    id: ClassVar[int]  # the type number on the wire
    field_names: ClassVar[tuple[str, ...]]
    layout: ClassVar[tuple[Construct, ...]]
    body: ClassVar[Any]  # the compiled construct of the body: the reference codec
    fast_encode: ClassVar[Callable[[Message], bytes]]  # generated (ninep.gencodec)
    fast_decode: ClassVar[Callable[[bytes, int], Message]]
    traits: ClassVar[Traits] = Traits()  # what it does besides its fields (ninep.traits)

    @property
    def kind(self) -> type[Message]:
        return type(self)

    @property
    def fields(self) -> dict[str, Any]:
        """The fields by name (not the tag)."""
        return {n: getattr(self, n) for n in self.field_names}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or type(other) is not type(self):
            return False
        return (self.tag, self.fields) == (other.tag, other.fields)

    def __hash__(self) -> int:
        return hash((self.id, self.tag))

    def encode(self) -> bytes:
        """The whole frame, size prefix included."""
        try:
            return type(self).fast_encode(self)
        except (TypeError, ValueError, AttributeError, IndexError, struct.error) as e:
            raise ValueError(f"cannot encode {type(self).__name__}: {e}") from e

    def encode_reference(self) -> bytes:
        """The frame as the `construct` codec builds it (the reference for `encode`)."""
        try:
            body: bytes = self.body.build(self.fields)
        except (ConstructError, KeyError, TypeError, ValueError, AttributeError, struct.error) as e:
            raise ValueError(f"cannot encode {type(self).__name__}: {e}") from e
        return HEADER.pack(HEADER_SIZE + len(body), self.id, self.tag) + body

    def __str__(self) -> str:
        """The conventional trace form: ``Twalk tag 1 fid 0 newfid 1 wnames ['a']``."""
        parts = [type(self).__name__, "tag", str(self.tag)]
        for name in self.field_names:
            value = getattr(self, name)
            if dataclasses.is_dataclass(value):  # a record: its fields, as on the wire
                for f in dataclasses.fields(value):
                    parts += [f.name, _show(getattr(value, f.name))]
            else:
                parts += [name, _show(value)]
        return " ".join(parts)

    __repr__ = __str__


R = TypeVar("R", bound=Message)


class Request(Message, Generic[R]):
    """A T-message whose answer, unless Rlerror, is an `R`."""

    __slots__ = ()


#: Every message type by its number; a message type (a class) is a "kind".
Kind = type[Message]
KINDS: dict[int, Kind] = {}
M = TypeVar("M", bound=Message)


@dataclass_transform(kw_only_default=True, eq_default=False)
def message(id: int, **traits: Any) -> Callable[[type[M]], type[M]]:
    """Declare message type number `id`: its fields are the class's annotated attributes,
    and `traits` what it does besides them (`ninep.traits.Traits`)."""

    def declare(cls: type[M]) -> type[M]:
        made = dataclass(eq=False, slots=True, kw_only=True)(cls)
        made.id = id
        made.traits = Traits(**traits)
        made.layout = _layout(made)
        made.field_names = tuple(f.name for f in made.layout)
        made.body = Struct(*made.layout, Terminated).compile()
        assert id not in KINDS, cls.__name__
        KINDS[id] = made
        return made

    return declare


# The whole protocol, in type-number order.  R-messages are their T-message + 1.
# fmt: off
@message(7)
class Rlerror(Message):
    ecode: U32

@message(8, quick=True)
class Tstatfs(Request["Rstatfs"]):
    fid: U32

@message(9)
class Rstatfs(Message):
    statfs: StatFsRecord

@message(12, quick=True, modifies=("fid",), modifies_if=opens_for_write)
class Tlopen(Request["Rlopen"]):
    fid: U32
    flags: U32

@message(13)
class Rlopen(Message):
    qid: QidField
    iounit: U32

@message(14, modifies=("fid",), names=("name",))
class Tlcreate(Request["Rlcreate"]):
    fid: U32
    name: Str
    flags: U32
    mode: U32
    gid: U32

@message(15)
class Rlcreate(Message):
    qid: QidField
    iounit: U32

@message(16, modifies=("fid",), names=("name",))
class Tsymlink(Request["Rsymlink"]):
    fid: U32
    name: Str
    symtgt: Str
    gid: U32

@message(17)
class Rsymlink(Message):
    qid: QidField

@message(18, modifies=("dfid",), names=("name",))
class Tmknod(Request["Rmknod"]):
    dfid: U32
    name: Str
    mode: U32
    major: U32
    minor: U32
    gid: U32

@message(19)
class Rmknod(Message):
    qid: QidField

@message(20, modifies=("dfid", "fid"), names=("name",))
class Trename(Request["Rrename"]):
    fid: U32
    dfid: U32
    name: Str

@message(21)
class Rrename(Message):
    pass

@message(22, quick=True)
class Treadlink(Request["Rreadlink"]):
    fid: U32

@message(23)
class Rreadlink(Message):
    target: Str

@message(24, quick=True)
class Tgetattr(Request["Rgetattr"]):
    fid: U32
    request_mask: U64

@message(25)
class Rgetattr(Message):
    attr: AttrRecord

@message(26, modifies=("fid",))
class Tsetattr(Request["Rsetattr"]):
    fid: U32
    attr: SetAttrRecord

@message(27)
class Rsetattr(Message):
    pass

@message(30, quick=True, newfid="newfid")
class Txattrwalk(Request["Rxattrwalk"]):
    fid: U32
    newfid: U32
    name: Str

@message(31)
class Rxattrwalk(Message):
    size: U64

@message(32, modifies=("fid",))
class Txattrcreate(Request["Rxattrcreate"]):
    fid: U32
    name: Str
    attr_size: U64
    flags: U32

@message(33)
class Rxattrcreate(Message):
    pass

@message(40, bulk="count")
class Treaddir(Request["Rreaddir"]):
    fid: U32
    offset: U64
    count: U32

@message(41, bulk="data")
class Rreaddir(Message):
    data: Data

@message(50)
class Tfsync(Request["Rfsync"]):
    fid: U32
    datasync: U32

@message(51)
class Rfsync(Message):
    pass

@message(52)
class Tlock(Request["Rlock"]):
    fid: U32
    type: U8
    flags: U32
    start: U64
    length: U64
    proc_id: U32
    client_id: Str

@message(53)
class Rlock(Message):
    status: U8

@message(54)
class Tgetlock(Request["Rgetlock"]):
    fid: U32
    type: U8
    start: U64
    length: U64
    proc_id: U32
    client_id: Str

@message(55)
class Rgetlock(Message):
    type: U8
    start: U64
    length: U64
    proc_id: U32
    client_id: Str

@message(70, modifies=("dfid",), names=("name",))
class Tlink(Request["Rlink"]):
    dfid: U32
    fid: U32
    name: Str

@message(71)
class Rlink(Message):
    pass

@message(72, modifies=("dfid",), names=("name",))
class Tmkdir(Request["Rmkdir"]):
    dfid: U32
    name: Str
    mode: U32
    gid: U32

@message(73)
class Rmkdir(Message):
    qid: QidField

@message(74, modifies=("olddirfid", "newdirfid"), names=("oldname", "newname"))
class Trenameat(Request["Rrenameat"]):
    olddirfid: U32
    oldname: Str
    newdirfid: U32
    newname: Str

@message(75)
class Rrenameat(Message):
    pass

@message(76, modifies=("dirfid",), names=("name",))
class Tunlinkat(Request["Runlinkat"]):
    dirfid: U32
    name: Str
    flags: U32

@message(77)
class Runlinkat(Message):
    pass

@message(100)
class Tversion(Request["Rversion"]):
    msize: U32
    version: Str

@message(101)
class Rversion(Message):
    msize: U32
    version: Str

@message(102)
class Tauth(Request["Rauth"]):
    afid: U32
    uname: Str
    aname: Str
    n_uname: U32

@message(103)
class Rauth(Message):
    aqid: QidField

@message(104, newfid="fid")
class Tattach(Request["Rattach"]):
    fid: U32
    afid: U32
    uname: Str
    aname: Str
    n_uname: U32

@message(105)
class Rattach(Message):
    qid: QidField

@message(108)
class Tflush(Request["Rflush"]):
    oldtag: U16

@message(109)
class Rflush(Message):
    pass

@message(110, quick=True, walks="wnames", newfid="newfid")
class Twalk(Request["Rwalk"]):
    fid: U32
    newfid: U32
    wnames: Names

@message(111)
class Rwalk(Message):
    qids: Qids

@message(116, bulk="count")
class Tread(Request["Rread"]):
    fid: U32
    offset: U64
    count: U32

@message(117, bulk="data")
class Rread(Message):
    data: Data

@message(118, bulk="data", modifies=("fid",))
class Twrite(Request["Rwrite"]):
    fid: U32
    offset: U64
    data: Data

@message(119)
class Rwrite(Message):
    count: U32

@message(120, quick=True, frees="fid")
class Tclunk(Request["Rclunk"]):
    fid: U32

@message(121)
class Rclunk(Message):
    pass

@message(122, modifies=("fid",), frees="fid")
class Tremove(Request["Rremove"]):
    fid: U32

@message(123)
class Rremove(Message):
    pass


# This project's extensions, served only on a connection whose Tversion asked for
# EXTENDED_VERSION (docs/protocol-extensions.md). Each is its plain message with a trailing
# request_mask (what Tgetattr would ask), and its reply the plain reply with the attributes
# of the object reached or made (Tlcreateattr also names the fid of the new file).
# 180-199: no number used by 9P2000, .u, .L, .e or gVisor; 200-215: none used by the first
# four (both sets are negotiated: a peer that did not agree to them never sees them).
@message(180, extension=1, quick=True, walks="wnames", newfid="newfid")
class Twalkgetattr(Request["Rwalkgetattr"]):
    fid: U32
    newfid: U32
    wnames: Names
    request_mask: U64

@message(181)
class Rwalkgetattr(Message):
    qids: Qids
    attr: AttrRecord

@message(182, extension=1, bulk="count")
class Treaddirattr(Request["Rreaddirattr"]):
    fid: U32
    offset: U64
    count: U32
    request_mask: U64

@message(183, bulk="data")
class Rreaddirattr(Message):
    flags: U32  # ReaddirFlag: END when no entry follows these
    data: Data  # entries: a Rreaddir dirent, then its Attr record (encode_dirent_attrs)

@message(184, extension=1, modifies=("fid",), names=("name",), newfid="newfid")
class Tlcreateattr(Request["Rlcreateattr"]):
    fid: U32
    newfid: U32  # the new file, opened; equal to fid: fid becomes it, as Tlcreate
    name: Str
    flags: U32
    mode: U32
    gid: U32
    request_mask: U64

@message(185)
class Rlcreateattr(Message):
    qid: QidField
    iounit: U32
    attr: AttrRecord

@message(186, extension=1, modifies=("fid",), names=("name",))
class Tsymlinkattr(Request["Rsymlinkattr"]):
    fid: U32
    name: Str
    symtgt: Str
    gid: U32
    request_mask: U64

@message(187)
class Rsymlinkattr(Message):
    qid: QidField
    attr: AttrRecord

@message(188, extension=1, modifies=("dfid",), names=("name",))
class Tmknodattr(Request["Rmknodattr"]):
    dfid: U32
    name: Str
    mode: U32
    major: U32
    minor: U32
    gid: U32
    request_mask: U64

@message(189)
class Rmknodattr(Message):
    qid: QidField
    attr: AttrRecord

@message(190, extension=1, modifies=("dfid",), names=("name",))
class Tmkdirattr(Request["Rmkdirattr"]):
    dfid: U32
    name: Str
    mode: U32
    gid: U32
    request_mask: U64

@message(191)
class Rmkdirattr(Message):
    qid: QidField
    attr: AttrRecord

# Change notification: a client leaves one Tnotify pending; the server answers a batch of
# changes of the export of `fid` (encode_changes), or OVERFLOW (NotifyFlag) when it lost some.
@message(192, extension=1, waits=True)
class Tnotify(Request["Rnotify"]):
    fid: U32

@message(193)
class Rnotify(Message):
    flags: U32
    data: Data  # changes: dir[8] kind[1] flags[1] name[s] each (encode_changes)

# Open by name: Twalkgetattr and then Tlopen of newfid, all or nothing.
@message(194, extension=1, quick=True, walks="wnames", newfid="newfid", modifies=("fid",),
         modifies_if=opens_for_write)
class Twalkopen(Request["Rwalkopen"]):
    fid: U32
    newfid: U32
    wnames: Names
    flags: U32
    request_mask: U64

@message(195)
class Rwalkopen(Message):
    qids: Qids
    qid: QidField
    iounit: U32
    attr: AttrRecord

@message(196, extension=1, modifies=("fid",))
class Tsetattrattr(Request["Rsetattrattr"]):
    fid: U32
    attr: SetAttrRecord
    request_mask: U64

@message(197)
class Rsetattrattr(Message):
    attr: AttrRecord

# The second set, served only where Tversion asked for EXTENDED_VERSION_2: Tnotify with flags
# (NotifyAsk), and each name change with the attributes of its directory after it (`dattr`;
# Trenameatattrs: of both directories), so that a client need not ask them. The requests are
# those of the first set (or of 9P2000.L) with a trailing request_mask; Tmkdirattrs also names
# a fid for the new directory. 198-213: see above.
@message(198, extension=2, waits=True)
class Tnotifyflags(Request["Rnotifyflags"]):
    fid: U32
    flags: U32  # NotifyAsk

@message(199)
class Rnotifyflags(Message):
    flags: U32  # NotifyFlag
    data: Data  # as Rnotify's

@message(200, extension=2, modifies=("fid",), names=("name",), newfid="newfid")
class Tlcreateattrs(Request["Rlcreateattrs"]):
    fid: U32
    newfid: U32
    name: Str
    flags: U32
    mode: U32
    gid: U32
    request_mask: U64

@message(201)
class Rlcreateattrs(Message):
    qid: QidField
    iounit: U32
    attr: AttrRecord
    dattr: AttrRecord

@message(202, extension=2, modifies=("fid",), names=("name",))
class Tsymlinkattrs(Request["Rsymlinkattrs"]):
    fid: U32
    name: Str
    symtgt: Str
    gid: U32
    request_mask: U64

@message(203)
class Rsymlinkattrs(Message):
    qid: QidField
    attr: AttrRecord
    dattr: AttrRecord

@message(204, extension=2, modifies=("dfid",), names=("name",))
class Tmknodattrs(Request["Rmknodattrs"]):
    dfid: U32
    name: Str
    mode: U32
    major: U32
    minor: U32
    gid: U32
    request_mask: U64

@message(205)
class Rmknodattrs(Message):
    qid: QidField
    attr: AttrRecord
    dattr: AttrRecord

@message(206, extension=2, modifies=("dfid",), names=("name",), newfid="newfid", made=attrs_made)
class Tmkdirattrs(Request["Rmkdirattrs"]):
    dfid: U32
    newfid: U32  # made for the new directory (NOFID: none)
    name: Str
    mode: U32
    gid: U32
    request_mask: U64

@message(207)
class Rmkdirattrs(Message):
    qid: QidField
    attr: AttrRecord
    dattr: AttrRecord

@message(208, extension=2, modifies=("dfid",), names=("name",))
class Tlinkattrs(Request["Rlinkattrs"]):
    dfid: U32
    fid: U32
    name: Str
    request_mask: U64

@message(209)
class Rlinkattrs(Message):
    attr: AttrRecord  # of the file linked, after
    dattr: AttrRecord

@message(210, extension=2, modifies=("olddirfid", "newdirfid"), names=("oldname", "newname"))
class Trenameatattrs(Request["Rrenameatattrs"]):
    olddirfid: U32
    oldname: Str
    newdirfid: U32
    newname: Str
    request_mask: U64

@message(211)
class Rrenameatattrs(Message):
    olddattr: AttrRecord
    newdattr: AttrRecord

@message(212, extension=2, modifies=("dirfid",), names=("name",))
class Tunlinkatattrs(Request["Runlinkatattrs"]):
    dirfid: U32
    name: Str
    flags: U32
    request_mask: U64

@message(213)
class Runlinkatattrs(Message):
    dattr: AttrRecord

# The listing of exports (first set): no fid, no attach; one string per export
# (ninep.listing).
@message(214, extension=1)
class Texports(Request["Rexports"]):
    pass

@message(215)
class Rexports(Message):
    exports: Names
# fmt: on

#: The extension requests (their `extension` trait): answered EOPNOTSUPP on a plain
#: 9P2000.L connection; the second set's unless Tversion asked for EXTENDED_VERSION_2.
EXTENSIONS = tuple(k for k in KINDS.values() if k.traits.extension == 1)
EXTENSIONS_2 = tuple(k for k in KINDS.values() if k.traits.extension == 2)
#: The requests that wait for changes (`waits`): not work in flight
#: (docs/protocol-extensions.md).
NOTIFIES = tuple(k for k in KINDS.values() if k.traits.waits)


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


def _kind_of(frame: bytes | bytearray | memoryview) -> tuple[Kind, int]:
    """The kind and tag of a whole frame, its size checked; ProtocolError otherwise."""
    if len(frame) < HEADER_SIZE:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than the 7-byte header")
    size, type_, tag = HEADER.unpack_from(frame)
    if size != len(frame):
        raise ProtocolError(f"frame says {size} bytes but holds {len(frame)}")
    kind = KINDS.get(type_)
    if kind is None:
        raise ProtocolError(f"unknown message type {type_}")
    return kind, tag


def decode(frame: bytes | bytearray | memoryview) -> Message:
    """Parse one whole frame (size prefix included); raise ProtocolError if malformed."""
    kind, tag = _kind_of(frame)
    try:
        return kind.fast_decode(bytes(frame[HEADER_SIZE:]), tag)
    except (Short, struct.error) as e:
        raise ProtocolError(f"malformed {kind.__name__} body: {e or 'wrong length'}") from e


def decode_reference(frame: bytes | bytearray | memoryview) -> Message:
    """`decode` by the `construct` codec (the reference for `decode`)."""
    kind, tag = _kind_of(frame)
    try:
        body = kind.body.parse(bytes(frame[HEADER_SIZE:]))
    except (ConstructError, UnicodeError, struct.error) as e:
        raise ProtocolError(f"malformed {kind.__name__} body: {e}") from e
    return kind(tag, **{name: body[name] for name in kind.field_names})


# ---- payloads: the entries of a message's data ----

P = TypeVar("P", bound=tuple[Any, ...])


class Payload(Generic[P]):
    """The data of a message as a list of `cls` entries, one after the other: `cls` is a
    NamedTuple whose annotations give an entry's layout, as a message's fields do. Both
    codecs: the generated one (`encode`, `decode`) and its `construct` reference."""

    def __init__(self, cls: type[P], what: str) -> None:
        self.cls = cls
        self.what = what  # in errors: "cannot encode {what}"
        self.layout = _layout(cls)
        strings = [f for f in self.layout if f.subcon is string]
        assert [f.name for f in strings] == ["name"], f"{cls.__name__}: size() needs one name"
        #: bytes of an entry less its name's (its length prefix counted)
        self.fixed = sum(
            fastcodec.U16.size if f.subcon is string else f.subcon.sizeof() for f in self.layout
        )
        self.entry = Struct(*self.layout)
        self._entries = Struct("entries" / GreedyRange(self.entry), Terminated).compile()
        self.fast_encode, self.fast_decode = _codec.PAYLOADS.get(cls.__name__, _stale(cls.__name__))

    def size(self, name: str) -> int:
        """Bytes one entry named `name` takes."""
        return self.fixed + len(name.encode("utf-8", "surrogateescape"))

    def encode(self, entries: Iterable[tuple[Any, ...]]) -> bytes:
        """Pack `entries` (`cls` entries, or tuples of their fields)."""
        try:
            encoded: bytes = self.fast_encode(entries)
        except (struct.error, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"cannot encode {self.what}: {e}") from e
        return encoded

    def decode(self, blob: bytes) -> list[P]:
        """Unpack `blob` into entries; ProtocolError if malformed."""
        try:
            entries: list[P] = self.fast_decode(blob)
        except (Short, struct.error) as e:
            raise ProtocolError(f"malformed {self.what}: {e or 'wrong length'}") from e
        return entries

    def encode_reference(self, entries: Iterable[tuple[Any, ...]]) -> bytes:
        """`encode` by the `construct` declaration (its reference)."""
        build: Callable[[dict[str, Any]], bytes] = self.entry.build
        names = self.cls._fields  # type: ignore[attr-defined]
        return b"".join(build(dict(zip(names, e, strict=True))) for e in entries)

    def decode_reference(self, blob: bytes) -> list[P]:
        """`decode` by the `construct` declaration (its reference)."""
        try:
            parsed = self._entries.parse(blob).entries
        except (ConstructError, UnicodeError, struct.error) as e:
            raise ProtocolError(f"malformed {self.what}: {e}") from e
        return [self.cls(*(e[f.name] for f in self.layout)) for e in parsed]


def _stale(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """What a message or payload the generated codec does not know of is given."""

    def stale(*args: object) -> Any:
        raise RuntimeError(f"ninep/_generated_codec.py lacks {name}: run python -m ninep.gencodec")

    return stale, stale


class ReaddirEntry(NamedTuple):
    """One directory entry in Rreaddir's data; `offset` is the cookie that continues after it."""

    qid: QidField
    offset: U64
    type: U8
    name: Str


class ReaddirattrEntry(NamedTuple):
    """One entry in Rreaddirattr's data: a `ReaddirEntry`, then its attributes."""

    qid: QidField
    offset: U64
    type: U8
    name: Str
    attr: AttrRecord


class Change(NamedTuple):
    """One change in Rnotify's data: entry `name` of the directory whose qid path is `dir`
    ("" for the directory itself), what happened (ChangeKind) and its ChangeFlag bits."""

    dir: U64
    kind: U8
    flags: U8
    name: Str


_dirents = Payload(ReaddirEntry, "directory entries")
_dirent_attrs = Payload(ReaddirattrEntry, "directory entries")
_changes = Payload(Change, "changes")
#: Every payload, for the codec's generation and its tests.
PAYLOADS: tuple[Payload[Any], ...] = (_dirents, _dirent_attrs, _changes)

#: What `encode_dirent_attrs` takes: a ReaddirattrEntry, or a tuple of its fields.
DirentAttr = tuple[Qid, int, int, str, Attr]

encode_dirents, decode_dirents, dirent_size = _dirents.encode, _dirents.decode, _dirents.size
encode_dirents_reference, decode_dirents_reference = (
    _dirents.encode_reference, _dirents.decode_reference)  # fmt: skip
encode_dirent_attrs, decode_dirent_attrs = _dirent_attrs.encode, _dirent_attrs.decode
dirent_attr_size = _dirent_attrs.size
encode_dirent_attrs_reference, decode_dirent_attrs_reference = (
    _dirent_attrs.encode_reference, _dirent_attrs.decode_reference)  # fmt: skip
encode_changes, decode_changes, change_size = _changes.encode, _changes.decode, _changes.size
encode_changes_reference, decode_changes_reference = (
    _changes.encode_reference, _changes.decode_reference)  # fmt: skip

for _kind in KINDS.values():  # the generated codec of every message
    _name = _kind.__name__
    _kind.fast_encode, _kind.fast_decode = _codec.MESSAGES.get(_name, _stale(_name))
