"""Named constants of 9P2000.L: version, limits, qid types, masks, lock values."""

from enum import IntEnum, IntFlag

VERSION = "9P2000.L"
#: The version a client asks for to get this project's extensions (docs/protocol-extensions.md).
EXTENDED_VERSION = VERSION + ".ninep"
#: The version that gives the second set of extensions too (name changes with the attributes
#: of their directories, Tnotifyflags).
EXTENDED_VERSION_2 = EXTENDED_VERSION + ".2"
#: Each version of this project by the extension sets it gives (0: plain 9P2000.L).
EXTENSION_SETS = {VERSION: 0, EXTENDED_VERSION: 1, EXTENDED_VERSION_2: 2}
UNKNOWN_VERSION = "unknown"

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
NONUNAME = 0xFFFFFFFF

HEADER_SIZE = 7  # size[4] type[1] tag[2]
IOHDRSZ = 24  # header of Rread/Twrite: what the kernel subtracts from msize per I/O
MIN_MSIZE = 4096
IO_SIZE = 1 << 20  # the data of one read or write at the default msize (FUSE's largest I/O)
DEFAULT_MSIZE = IO_SIZE + IOHDRSZ  # what a client asks for: one Tread/Twrite carries 1 MiB
SERVER_MSIZE = IO_SIZE + 4096  # a server's default cap: a whole 1 MiB I/O fits one message
MAXWELEM = 16


class QidType(IntFlag):
    """High bits of a qid's type byte (the kind of the file)."""

    FILE = 0x00
    SYMLINK = 0x02
    TMP = 0x04
    AUTH = 0x08
    MOUNT = 0x10
    EXCL = 0x20
    APPEND = 0x40
    DIR = 0x80


class GetattrMask(IntFlag):
    """Tgetattr request_mask and Rgetattr valid bits."""

    MODE = 0x1
    NLINK = 0x2
    UID = 0x4
    GID = 0x8
    RDEV = 0x10
    ATIME = 0x20
    MTIME = 0x40
    CTIME = 0x80
    INO = 0x100
    SIZE = 0x200
    BLOCKS = 0x400
    BASIC = 0x7FF
    BTIME = 0x800
    GEN = 0x1000
    DATA_VERSION = 0x2000
    ALL = 0x3FFF


#: This project's extension (negotiated: EXTENDED_VERSION), a bit of Attr.valid for a
#: directory on a connection that asked for change notification (Tnotify): the server
#: watches the directory, and reports every change of its entries (ChangeKind) and of
#: itself. Never set on a plain 9P2000.L connection.
NOTIFY_COVERED = 1 << 63


class ChangeKind(IntEnum):
    """What happened to a name of a directory, as Rnotify reports it."""

    CREATED = 1
    REMOVED = 2
    RENAMED_FROM = 3  # the name was moved away (to another name or directory)
    RENAMED_TO = 4  # the name was moved here (what it named before is gone)
    ATTRIB = 5  # attributes or extended attributes changed
    DATA = 6  # the content was written or truncated
    UNCOVERED = 7  # the directory is no longer watched (removed, or its watch lost): name ""


class ChangeFlag(IntFlag):
    """Flags of one change in Rnotify."""

    OWN = 1  # made by a request of this connection, and of no other


class NotifyFlag(IntFlag):
    """Flags of Rnotify."""

    OVERFLOW = 1  # changes were lost: the client must drop everything it caches


class NotifyAsk(IntFlag):
    """Flags of Tnotifyflags: what the connection asks to be sent."""

    OTHERS = 1  # only changes not marked OWN: the connection's own are not sent at all


class ReaddirFlag(IntFlag):
    """Flags of Rreaddirattr."""

    END = 1  # nothing follows the entries of this reply: the listing is complete


class SetattrMask(IntFlag):
    """Tsetattr valid bits; a time bit without its _SET bit means "now"."""

    MODE = 0x1
    UID = 0x2
    GID = 0x4
    SIZE = 0x8
    ATIME = 0x10
    MTIME = 0x20
    CTIME = 0x40
    ATIME_SET = 0x80
    MTIME_SET = 0x100


class LockType(IntEnum):
    """Tlock/Tgetlock type."""

    RDLCK = 0
    WRLCK = 1
    UNLCK = 2


class LockFlag(IntFlag):
    """Tlock flags."""

    BLOCK = 1
    RECLAIM = 2
    # This project's extension (negotiated: EXTENDED_VERSION): a whole-file BSD flock(2)
    # lock, owned by the open fid, apart from the fid's POSIX locks. On a plain 9P2000.L
    # connection, and by servers that do not know it, it is ignored: a POSIX lock of the
    # same range is set instead.
    FLOCK = 1 << 31


class LockStatus(IntEnum):
    """Rlock status."""

    SUCCESS = 0
    BLOCKED = 1
    ERROR = 2
    GRACE = 3


class OpenFlag(IntFlag):
    """Tlopen/Tlcreate flags: the Linux (x86) octal O_* values."""

    RDONLY = 0o0
    WRONLY = 0o1
    RDWR = 0o2
    ACCMODE = 0o3
    CREAT = 0o100
    EXCL = 0o200
    NOCTTY = 0o400
    TRUNC = 0o1000
    APPEND = 0o2000
    NONBLOCK = 0o4000
    DSYNC = 0o10000
    FASYNC = 0o20000
    DIRECT = 0o40000
    LARGEFILE = 0o100000
    DIRECTORY = 0o200000
    NOFOLLOW = 0o400000
    NOATIME = 0o1000000
    CLOEXEC = 0o2000000
    SYNC = 0o4010000


AT_REMOVEDIR = 0x200  # Tunlinkat flags
XATTR_CREATE = 1  # Txattrcreate flags
XATTR_REPLACE = 2
V9FS_MAGIC = 0x01021997  # Rstatfs type
