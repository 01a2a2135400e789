"""Who is connecting, and whether they may: the server's admission of a new connection.

The host uid of a peer is known where the kernel can tell: `SO_PEERCRED` on a
unix socket; on loopback TCP, the uid that owns the peer's own socket, read
from `/proc/net/tcp` and `/proc/net/tcp6` (the peer's socket is the one whose
local address is our peer address and whose remote address is ours). A peer
on another host has no uid we can know: it is admitted by its network
(`--allow-net`), as NFS trusts AUTH_SYS hosts. docs/security.md states the model.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_PROC_TCP = ("/proc/net/tcp", "/proc/net/tcp6")


def host_address(host: str) -> IPAddress | None:
    """`host` as an IP address (`localhost` is 127.0.0.1); None for another host name."""
    if host == "localhost":
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def is_loopback(address: IPAddress) -> bool:
    """Whether `address` is on this host's loopback (an IPv4-mapped one counts)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _proc_hex(address: IPAddress, port: int) -> str:
    """`address:port` as /proc/net/tcp[6] writes it: 32-bit words in host byte order."""
    packed = address.packed
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _forms(address: IPAddress) -> list[IPAddress]:
    """The forms a socket of `address` may have in /proc (an IPv4-mapped one: both)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return [address, address.ipv4_mapped]
    if isinstance(address, ipaddress.IPv4Address):
        return [address, ipaddress.IPv6Address(f"::ffff:{address}")]
    return [address]


def tcp_owner(peer: tuple[IPAddress, int], local: tuple[IPAddress, int]) -> int | None:
    """The uid owning the loopback socket connected from `peer` to `local`; None if gone."""
    wanted = {
        (_proc_hex(p, peer[1]), _proc_hex(q, local[1]))
        for p in _forms(peer[0])
        for q in _forms(local[0])
    }
    for path in _PROC_TCP:
        try:
            with open(path) as table:
                next(table)  # the heading
                for line in table:
                    cols = line.split()
                    if (cols[1], cols[2]) in wanted:
                        return int(cols[7])
        except FileNotFoundError:  # no IPv6 on this host
            continue
    return None


class Socket(Protocol):
    """What is read of a connected socket (a `socket.socket` or a trio socket)."""

    @property
    def family(self) -> int: ...
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...
    def getpeername(self) -> Any: ...
    def getsockname(self) -> Any: ...


def _ip_port(name: object) -> tuple[IPAddress, int]:
    assert isinstance(name, tuple)
    return ipaddress.ip_address(name[0].partition("%")[0]), int(name[1])


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is at the other end of a connection, as far as the host can tell."""

    uid: int | None  # None: another host, or not found
    address: IPAddress | None = None  # None: a unix socket

    @classmethod
    def of(cls, sock: Socket) -> Peer:
        """The peer at the other end of a connected socket: its uid where the kernel tells
        it (SO_PEERCRED; the owner of a loopback peer's socket), its address on TCP."""
        if sock.family == socket.AF_UNIX:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return cls(int(struct.unpack("3i", creds)[1]))
        peer = _ip_port(sock.getpeername())
        if not is_loopback(peer[0]):
            return cls(None, peer[0])
        return cls(tcp_owner(peer, _ip_port(sock.getsockname())), peer[0])

    def __str__(self) -> str:
        where = "unix" if self.address is None else str(self.address)
        return where if self.uid is None else f"{where} uid {self.uid}"


@dataclass(frozen=True, slots=True)
class Admission:
    """Which peers are served: local uids, and networks of other hosts."""

    uids: frozenset[int] = field(default_factory=frozenset)
    nets: tuple[IPNetwork, ...] = ()

    @classmethod
    def serving(
        cls, serving_uid: int, uids: Iterable[int] = (), nets: Iterable[IPNetwork] = ()
    ) -> Admission:
        """Root, the serving user `serving_uid` and `uids`; other hosts in `nets`."""
        return cls(frozenset({0, serving_uid, *uids}), tuple(nets))

    def refusal(self, peer: Peer) -> str | None:
        """Why `peer` is refused, or None if it is served."""
        if peer.address is not None and not is_loopback(peer.address):
            if any(peer.address in net for net in self.nets):
                return None
            return f"{peer.address} is in no --allow-net network"
        if peer.uid is None:
            return "its uid could not be found"
        if peer.uid not in self.uids:
            return f"uid {peer.uid} is not allowed (--allow-uid)"
        return None
