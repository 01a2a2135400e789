"""The owner of one TCP socket, asked of the kernel: NETLINK_SOCK_DIAG, as `ss` does.

One exact lookup (an `inet_diag_req_v2` naming the socket's four-tuple, no
dump), answered by the kernel at once whatever the number of sockets on the
host: about 20 us, where reading /proc/net/tcp costs as much as there are
sockets. Where netlink or the kernel's tcp_diag is refused (gVisor, a kernel
without the module), `DiagRefused` says so and the caller reads /proc.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

NETLINK_SOCK_DIAG = 4  # linux/netlink.h; Python's socket module has no name for it
SOCK_DIAG_BY_FAMILY = 20  # linux/sock_diag.h
_NLM_F_REQUEST = 0x1
_NLMSG_ERROR = 0x2
_NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: match any socket of the four-tuple
_ALL_STATES = 0xFFFFFFFF

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_REQUEST = struct.Struct("=BBBBI")  # struct inet_diag_req_v2, up to its sockid
_SOCKID = struct.Struct("!HH16s16s")  # struct inet_diag_sockid: ports, addresses (big-endian)
_SOCKID_END = struct.Struct("=III")  # its interface and cookie
_ERROR = struct.Struct("=i")  # struct nlmsgerr's error, after the header
_MESSAGE = struct.Struct("=BBBB48sIIIII")  # struct inet_diag_msg: ..., idiag_uid, idiag_inode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DiagRefused(OSError):
    """The kernel does not answer sock_diag requests here."""


def _padded(address: IPAddress) -> bytes:
    return address.packed.ljust(16, b"\0")


def request(local: tuple[IPAddress, int], remote: tuple[IPAddress, int], seq: int = 1) -> bytes:
    """The netlink message (sequence number `seq`) asking for the TCP socket bound to
    `local` and connected to `remote` (both of one IP version)."""
    family = socket.AF_INET if local[0].version == 4 else socket.AF_INET6
    sockid = _SOCKID.pack(local[1], remote[1], _padded(local[0]), _padded(remote[0]))
    body = (
        _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES)
        + sockid
        + _SOCKID_END.pack(0, _NO_COOKIE, _NO_COOKIE)
    )
    size = _HEADER.size + len(body)
    return _HEADER.pack(size, SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, seq, 0) + body


def parse_owner(reply: bytes) -> int | None:
    """The uid in the kernel's answer; None if there is no such socket or no process holds
    it any more (its uid reads as root's then); DiagRefused if the kernel refused."""
    _, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind == _NLMSG_ERROR:
        (code,) = _ERROR.unpack_from(reply, _HEADER.size)
        if -code == errno.ENOENT:
            return None
        raise DiagRefused(-code, f"sock_diag: {errno.errorcode.get(-code, -code)}")
    if kind != SOCK_DIAG_BY_FAMILY:
        raise DiagRefused(errno.EPROTO, f"sock_diag: unexpected message type {kind}")
    fields = _MESSAGE.unpack_from(reply, _HEADER.size)
    uid, inode = fields[8], fields[9]
    if not inode:  # closed by its process (orphaned, TIME_WAIT): no owner, whatever uid says
        return None
    return int(uid)


# errors of a moment (no descriptor or memory now), not a kernel that cannot be asked
_TRANSIENT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class SockDiag:
    """A netlink socket kept open to ask the kernel who owns TCP sockets: once open, a
    question needs no descriptor (the last one may have gone to the connection asked
    about)."""

    def __init__(self) -> None:
        self._nl: socket.socket | None = None
        self._seq = 0

    def owner(self, local: tuple[IPAddress, int], remote: tuple[IPAddress, int]) -> int | None:
        """The uid owning the TCP socket bound to `local` and connected to `remote`; None
        if there is none or no process holds it. DiagRefused where the kernel cannot be
        asked; a plain OSError for a want of the moment (EMFILE)."""
        nl = self._open()
        self._seq = seq = self._seq % 0xFFFFFFFF + 1
        try:
            nl.send(request(local, remote, seq))
            while True:  # an answer to an earlier question given up on is skipped
                reply = nl.recv(4096)
                if _HEADER.unpack_from(reply)[3] == seq:
                    return parse_owner(reply)
        except DiagRefused:
            raise
        except OSError as e:
            self.close()
            if e.errno in _TRANSIENT:
                raise
            raise DiagRefused(e.errno or errno.EIO, f"sock_diag: {e}") from None

    def _open(self) -> socket.socket:
        if self._nl is None:
            try:
                nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
            except OSError as e:
                if e.errno in _TRANSIENT:
                    raise
                raise DiagRefused(e.errno, f"netlink: {e.strerror}") from None
            nl.settimeout(1.0)  # the kernel answers within the send; a guard, never waited for
            self._nl = nl
        return self._nl

    def close(self) -> None:
        if self._nl is not None:
            self._nl.close()
            self._nl = None
