"""Who is connecting, and whether they may: the server's admission of a new connection.

The host uid of a peer is known where the kernel can tell: `SO_PEERCRED` on a
unix socket; on loopback TCP, the uid that owns the peer's own socket (the one
whose local address is our peer address and whose remote address is ours),
asked of the kernel for that one socket (`ninep.sockdiag`, constant time), or,
where the kernel refuses that question, read from `/proc/net/tcp` and
`/proc/net/tcp6` in a worker thread (its cost grows with the host's sockets,
so it never runs in the event loop). A peer on another host has no uid we can
know: it is admitted by its network (`--allow-net`), as NFS trusts AUTH_SYS
hosts. docs/security.md states the model.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from .sockdiag import DiagRefused, SockDiag
from .stats import AdmissionFigures

log = logging.getLogger("ninep.server")

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


def _pairs(
    peer: tuple[IPAddress, int], local: tuple[IPAddress, int]
) -> list[tuple[tuple[IPAddress, int], tuple[IPAddress, int]]]:
    """(own address, remote address) of the peer's socket in each IP version it may have:
    an IPv4 client of a dual-stack listener has an IPv4 socket, tried first."""
    pairs = [
        ((p, peer[1]), (q, local[1]))
        for p in _forms(peer[0])
        for q in _forms(local[0])
        if p.version == q.version
    ]
    return sorted(pairs, key=lambda pair: pair[0][0].version)


def tcp_owner(
    peer: tuple[IPAddress, int], local: tuple[IPAddress, int], diag: SockDiag | None = None
) -> int | None:
    """The uid owning the loopback socket connected from `peer` to `local`, asked of the
    kernel (through `diag`, else a netlink socket of its own); None if gone. DiagRefused
    where the kernel cannot be asked."""
    asking = diag or SockDiag()
    try:
        for own, remote in _pairs(peer, local):
            uid = asking.owner(own, remote)
            if uid is not None:
                return uid
        return None
    finally:
        if diag is None:
            asking.close()


def proc_tcp_owner(peer: tuple[IPAddress, int], local: tuple[IPAddress, int]) -> int | None:
    """`tcp_owner` read from /proc/net/tcp[6]: as slow as there are sockets on the host."""
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
                    if (cols[1], cols[2]) in wanted:  # inode 0: closed by its process, no owner
                        return int(cols[7]) if cols[9] != "0" else None
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
    def of_unix(cls, sock: Socket) -> Peer:
        """The peer of a connected unix socket: its uid (SO_PEERCRED)."""
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return cls(int(struct.unpack("3i", creds)[1]))

    def __str__(self) -> str:
        where = "unix" if self.address is None else str(self.address)
        return where if self.uid is None else f"{where} uid {self.uid}"


@dataclass(frozen=True, slots=True)
class Admission:
    """Which peers are served, and what each may claim (docs/security.md).

    Trusted (`uids`: root, the serving user, `--trust-uid`; and other hosts of
    `nets`): their claims are taken as said. Bounded (`bounded`: `--allow-uid`):
    served, but attached only as their own uid, and checked as it."""

    uids: frozenset[int] = field(default_factory=frozenset)
    nets: tuple[IPNetwork, ...] = ()
    bounded: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def serving(
        cls,
        serving_uid: int,
        uids: Iterable[int] = (),
        nets: Iterable[IPNetwork] = (),
        trusted: Iterable[int] = (),
    ) -> Admission:
        """Root, the serving user `serving_uid` and `trusted` uids, trusted; `uids`, bounded
        by themselves; other hosts in `nets`, trusted."""
        trust = frozenset({0, serving_uid, *trusted})
        return cls(trust, tuple(nets), frozenset(uids) - trust)

    def refusal(self, peer: Peer) -> str | None:
        """Why `peer` is refused, or None if it is served."""
        if peer.address is not None and not is_loopback(peer.address):
            if any(peer.address in net for net in self.nets):
                return None
            return f"{peer.address} is in no --allow-net network"
        if peer.uid is None:
            return "its uid could not be found"
        if peer.uid not in self.uids and peer.uid not in self.bounded:
            return f"uid {peer.uid} is not allowed (--allow-uid)"
        return None

    def bound(self, peer: Peer) -> int | None:
        """The uid a served `peer` may attach as (its own, if admitted by --allow-uid);
        None: it is trusted, its claims are taken as said."""
        local = peer.address is None or is_loopback(peer.address)
        return peer.uid if local and peer.uid in self.bounded else None


class PeerFinder:
    """Finds who is at the other end of new connections (`Peer`), and counts how."""

    def __init__(self) -> None:
        self.asked = 0  # loopback peers whose owner the kernel told (sock_diag)
        self.scanned = 0  # loopback peers found in /proc/net/tcp[6] (sock_diag refused)
        self.refused: str | None = None  # why the kernel cannot be asked, once found
        self._diag = SockDiag()
        self._scanning = trio.CapacityLimiter(1)  # one /proc scan at a time

    async def peer(self, sock: Socket) -> Peer:
        """The peer at the other end of a connected socket: its uid where the kernel tells
        it, its address on TCP. OSError if it is gone already."""
        if sock.family == socket.AF_UNIX:
            return Peer.of_unix(sock)
        peer = _ip_port(sock.getpeername())
        if not is_loopback(peer[0]):
            return Peer(None, peer[0])
        local = _ip_port(sock.getsockname())
        if self.refused is None:
            try:
                uid = tcp_owner(peer, local, self._diag)
            except DiagRefused as e:
                self.refused = str(e)
                log.warning("the kernel cannot tell who owns a socket (%s): loopback peers are "
                            "found in /proc/net/tcp, in a worker thread", e)  # fmt: skip
            else:
                self.asked += 1
                return Peer(uid, peer[0])
        self.scanned += 1
        uid = await trio.to_thread.run_sync(proc_tcp_owner, peer, local, limiter=self._scanning)
        return Peer(uid, peer[0])

    def figures(self) -> AdmissionFigures:
        """How peers were found (`ninep.stats`)."""
        return {"asked_kernel": self.asked, "scanned_proc": self.scanned,
                "sock_diag_refused": self.refused}  # fmt: skip
