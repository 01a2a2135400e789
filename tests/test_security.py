"""Trust (docs/security.md): who may connect, and no client gains host privilege.

Every attacker here is a real process of another uid (a forked child that has
dropped root), talking to a real `ninep-server` over its sockets; every test
checks both the refusal and that nothing on the host changed.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import IO, Any

import pytest
import trio

from ninep import cli
from ninep.admission import Admission, Peer, PeerFinder, proc_tcp_owner, tcp_owner
from ninep.client import Fid, connect
from ninep.constants import OpenFlag

from .children import as_ids
from .notified import three_exports

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: children of other uids")

SERVER = [sys.executable, "-m", "ninep"]
ATTACKER = 4242  # a uid the host does not know, as a local user of another account
FRIEND = 4243  # a uid the server is told to allow
NOBODY = 65534


@dataclass
class Served:
    """A running `ninep-server` and where it listens."""

    proc: subprocess.Popen[bytes]
    tcp: str
    unix: str
    export: Path
    log: list[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


def _start(args: list[str], export: Path, sockdir: Path, host: str = "127.0.0.1") -> Served:
    """`ninep-server` on TCP (`host`) and a unix socket in `sockdir`; waits until it listens."""
    unix = f"unix:{sockdir / '9p.sock'}"
    cmd = [*SERVER, "--export", f"C={export}", "-v", "--listen", f"tcp:{host}:0",
           "--listen", unix, *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    log: list[str] = []
    assert proc.stderr is not None
    while len(found := re.findall(r"listening on (\S+)", "".join(log))) < 2:
        line = proc.stderr.readline().decode()
        assert line, "the server did not start:\n" + "".join(log)
        log.append(line)
    threading.Thread(target=_drain, args=(proc.stderr, log), daemon=True).start()
    tcp = next(a for a in found if a.startswith("tcp:"))
    return Served(proc, tcp, unix, export, log)


def _drain(stream: IO[bytes], log: list[str]) -> None:
    """Keep reading the server's log (a full pipe would stop it)."""
    log.extend(line.decode() for line in stream)


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory every uid may enter (pytest's own are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="ninep-security-"))
    top.chmod(0o755)
    (top / "c").mkdir()
    (top / "c").chmod(0o777)
    (top / "run").mkdir()
    (top / "run").chmod(0o755)
    yield top
    shutil.rmtree(top)


@pytest.fixture
def serve(place: Path) -> Iterator[Callable[..., Served]]:
    """Start a server with these arguments (it stops at the end of the test)."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        started.append(_start(list(args), place / "c", place / "run"))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def _client(address: str, claim: int, work: Callable[[Fid], Awaitable[Any]]) -> Any:
    """Connect, attach export C claiming uid `claim`, return `work(root)`; 'refused' if cut off."""

    async def main() -> Any:
        try:
            async with connect(address) as client:
                root = await client.attach("C", n_uname=claim)
                return await work(root)
        except (ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError):
            return "refused"

    return trio.run(main)


async def errno_of(call: Awaitable[object]) -> int:
    """0 if the call succeeds, else its errno."""
    try:
        await call
    except OSError as e:
        return e.errno or -1
    return 0


def as_attacker(
    address: str,
    claim: int,
    work: Callable[[Fid], Awaitable[Any]],
    uid: int = ATTACKER,
    groups: tuple[int, ...] = (),
) -> Any:
    """`_client(address, claim, work)` in a process of host uid `uid` (and `groups`)."""
    return as_ids(uid, uid, groups, _client, address, claim, work)


async def _hello(root: Fid) -> str:
    return "served" if root.qid is not None else "?"


# ---- starting ----


def test_root_serves_only_on_purpose(place: Path) -> None:
    out = subprocess.run([*SERVER, "--export", f"C={place / 'c'}"], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "ninep-server: refusing to serve as root: give --user NAME to serve as that user"
        " (root then only binds the listeners), or --allow-root to serve as root on purpose"
    ]


def test_non_loopback_listen_needs_allow_net(place: Path) -> None:
    out = subprocess.run(
        [*SERVER, "--allow-root", "--export", f"C={place / 'c'}", "--listen", "tcp:0.0.0.0:0"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "tcp:0.0.0.0:0 is not a loopback address" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_user_is_one_line(place: Path) -> None:
    out = subprocess.run(
        [*SERVER, "--user", "no-such-user-here", "--export", f"C={place / 'c'}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "ninep-server: no user 'no-such-user-here' on this host"


def test_user_drops_every_id_and_owns_its_socket(serve: Callable[..., Served], place: Path) -> None:
    served = serve("--user", "nobody")
    status = Path(f"/proc/{served.proc.pid}/status").read_text()
    ids = {k: v.split() for k, v in re.findall(r"^(Uid|Gid|Groups):\s*(.*)$", status, re.M)}
    assert ids["Uid"] == [str(NOBODY)] * 4 and ids["Gid"] == [str(NOBODY)] * 4
    assert "0" not in ids["Groups"]
    sock = os.stat(place / "run" / "9p.sock")
    assert stat.S_IMODE(sock.st_mode) == 0o600 and sock.st_uid == NOBODY

    async def make_setuid(root: Fid) -> int:
        f = await root.clone()
        await f.create("id", OpenFlag.RDWR, 0o4755)
        return await f.write(0, b"#!/bin/sh\n")

    assert _client(served.tcp, 0, make_setuid) == 10  # root on the host, claiming uid 0
    host = os.stat(place / "c" / "id")
    assert host.st_uid == NOBODY and stat.S_IMODE(host.st_mode) & 0o7000 == 0


def test_socket_group_makes_the_socket_0660(serve: Callable[..., Served], place: Path) -> None:
    serve("--allow-root", "--socket-group", str(FRIEND))
    sock = os.stat(place / "run" / "9p.sock")
    assert stat.S_IMODE(sock.st_mode) == 0o660 and sock.st_gid == FRIEND


# ---- admission ----


def test_unlisted_uids_are_refused_on_unix_and_tcp(serve: Callable[..., Served]) -> None:
    served = serve("--allow-root", "--metadata", "--socket-group", str(ATTACKER),
                   "--allow-uid", str(FRIEND))  # fmt: skip
    for address in (served.tcp, served.unix):
        assert as_attacker(address, ATTACKER, _hello, groups=(ATTACKER,)) == "refused"
        assert as_attacker(address, FRIEND, _hello, uid=FRIEND, groups=(ATTACKER,)) == "served"
        assert _client(address, 0, _hello) == "served"  # root
    assert any(f"uid {ATTACKER} is not allowed" in line for line in served.log)


def test_other_hosts_are_served_only_from_allowed_networks(place: Path) -> None:
    own = _own_address()
    if own is None:
        pytest.skip("this host has no non-loopback IPv4 address to connect from")
    other = "198.51.100.0/24" if own.startswith("192.0.2.") else "192.0.2.0/24"
    for net, expected in ((other, "refused"), (f"{own}/32", "served")):
        served = _start(["--allow-root", "--allow-net", net], place / "c", place / "run", own)
        try:
            assert _client(served.tcp, 0, _hello) == expected  # from `own`: another host
        finally:
            served.stop()


def _own_address() -> str | None:
    """This host's address on its default route, if not loopback."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.254", 9))  # no packet is sent: only a route is chosen
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_the_owner_of_a_loopback_peer_is_found() -> None:
    """By asking the kernel (sock_diag) and by reading /proc, which agree: on IPv4, IPv6,
    and an IPv4 client of a dual-stack listener (an IPv4 socket, an IPv4-mapped peer)."""
    for family, bind, host in ((socket.AF_INET, "127.0.0.1", "127.0.0.1"),
                               (socket.AF_INET6, "::1", "::1"),
                               (socket.AF_INET6, "::", "127.0.0.1")):  # fmt: skip
        with socket.socket(family) as listener:
            listener.bind((bind, 0))
            listener.listen()
            port = listener.getsockname()[1]

            def connect_and_wait(host: str = host, port: int = port) -> int:
                with socket.create_connection((host, port)) as c:
                    c.recv(1)  # until the parent has looked
                return 0

            child = threading.Thread(
                target=lambda: as_ids(ATTACKER, ATTACKER, (), connect_and_wait)
            )
            child.start()
            conn, _ = listener.accept()
            with conn:
                finder = PeerFinder()
                peer = trio.run(finder.peer, conn)
                assert peer.uid == ATTACKER and str(peer).endswith(f"uid {ATTACKER}")
                assert (finder.asked, finder.scanned) == (1, 0)  # the kernel was asked
                ends = [(ip_address(n[0].partition("%")[0]), n[1])
                        for n in (conn.getpeername(), conn.getsockname())]  # fmt: skip
                assert tcp_owner(ends[0], ends[1]) == proc_tcp_owner(ends[0], ends[1]) == ATTACKER
                conn.send(b"x")
            child.join()


def test_admission_rules() -> None:
    rules = Admission.serving(1000, [2000], [ip_network("10.0.0.0/8")])
    assert rules.refusal(Peer(0)) is None and rules.refusal(Peer(1000)) is None
    assert rules.refusal(Peer(2000, ip_address("127.0.0.1"))) is None
    assert "uid 3000 is not allowed" in str(rules.refusal(Peer(3000, ip_address("::1"))))
    assert rules.refusal(Peer(None)) == "its uid could not be found"
    assert rules.refusal(Peer(None, ip_address("10.1.2.3"))) is None
    assert "no --allow-net" in str(rules.refusal(Peer(None, ip_address("192.168.1.1"))))
    assert rules.refusal(Peer(2000, ip_address("::ffff:127.0.0.1"))) is None  # mapped loopback
    assert tcp_owner((ip_address("127.0.0.1"), 1), (ip_address("127.0.0.1"), 1)) is None
    assert proc_tcp_owner((ip_address("127.0.0.1"), 1), (ip_address("127.0.0.1"), 1)) is None


# ---- the attacks of issue 10, each refused with nothing changed on the host ----


def test_a_claimed_root_makes_no_setuid_host_file(
    serve: Callable[..., Served], place: Path
) -> None:
    served = serve("--allow-root", "--trust-uid", str(ATTACKER))  # its claim of root stands
    program = Path("/usr/bin/id").read_bytes()

    async def copy_id_setuid(root: Fid) -> int:
        f = await root.clone()
        await f.create("id", OpenFlag.RDWR, 0o4755)
        await f.write(0, program)
        await root.walk("id")
        return 0

    assert as_attacker(served.tcp, 0, copy_id_setuid) == 0
    host = place / "c" / "id"
    st = os.stat(host)
    assert stat.S_IMODE(st.st_mode) & 0o7000 == 0 and st.st_uid == 0  # no chown to a claim

    def run_it() -> str:
        return subprocess.run([str(host), "-u"], capture_output=True, text=True).stdout.strip()

    assert as_ids(ATTACKER, ATTACKER, (), run_it) == str(ATTACKER)


def test_no_client_sets_a_security_xattr(serve: Callable[..., Served], place: Path) -> None:
    served = serve("--allow-root", "--trust-uid", str(ATTACKER))
    (place / "c" / "setpriv").write_bytes(b"\x7fELF")

    async def set_caps(root: Fid) -> list[int]:
        f = await root.walk("setpriv")
        return [
            await errno_of(f.setxattr(name, b"\x01\x00\x00\x02"))
            for name in ("security.capability", "trusted.x", "system.posix_acl_access")
        ]

    assert as_attacker(served.tcp, ATTACKER, set_caps) == [errno.EOPNOTSUPP] * 3
    assert os.listxattr(place / "c" / "setpriv") == []


def test_the_serving_user_bounds_every_client(serve: Callable[..., Served], place: Path) -> None:
    victim = place / "c" / "root-only"
    victim.write_text("secret")
    victim.chmod(0o600)
    served = serve("--user", "nobody")

    async def attack(root: Fid) -> list[int]:
        f = await root.walk("root-only")
        return [
            await errno_of(f.clone()),  # a walk is no access
            await errno_of(root.read_file("root-only")),
            await errno_of(f.setattr(size=1)),
            await errno_of(f.setattr(mode=0o666)),
        ]

    assert _client(served.tcp, 0, attack) == [0, errno.EACCES, errno.EACCES, errno.EPERM]
    st = victim.stat()
    assert victim.read_text() == "secret" and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0


def test_metadata_enforces_what_linux_checks(serve: Callable[..., Served], place: Path) -> None:
    served = serve("--allow-root", "--metadata", "--allow-uid", str(ATTACKER))

    async def make_victim(root: Fid) -> int:
        await root.write_file("victim", b"keep me", mode=0o644)
        return 0

    assert _client(served.tcp, 0, make_victim) == 0

    async def attack(root: Fid) -> list[int]:
        f = await root.walk("victim")
        return [
            await errno_of(f.setattr(size=1)),
            await errno_of(root.mknod("mem", stat.S_IFCHR | 0o666, 1, 1, gid=NOBODY)),
            await errno_of(root.mknod("pipe", stat.S_IFIFO | 0o666, gid=NOBODY)),  # its group
        ]

    assert as_attacker(served.tcp, ATTACKER, attack) == [errno.EACCES, errno.EPERM, 0]
    assert (place / "c" / "victim").read_bytes() == b"keep me"
    assert not (place / "c" / "mem").exists()
    for name in os.listdir(place / "c"):
        assert stat.S_ISREG(os.lstat(place / "c" / name).st_mode)  # the fifo too, on the host


# ---- bounded peers (--allow-uid) and trusted ones (--trust-uid): issue 23 ----


async def _attach_errno(address: str, claim: int) -> int:
    """0 if attaching export C claiming uid `claim` succeeds, else its errno."""
    async with connect(address) as client:
        return await errno_of(client.attach("C", n_uname=claim))


def _root_files(place: Path) -> tuple[Path, Path]:
    """A file of root's 0600 and one 0644, as root made them through a server with metadata
    (their owner stored) and on the host."""
    secret, shared = place / "c" / "secret", place / "c" / "shared"
    secret.write_text("root's")
    secret.chmod(0o600)
    shared.write_text("root's too")
    shared.chmod(0o644)
    return secret, shared


@pytest.mark.parametrize("mode", [("--allow-root", "--metadata"), ("--user", "nobody")],
                         ids=["root-run with metadata", "run as nobody"])  # fmt: skip
def test_a_bounded_peer_is_only_itself(
    serve: Callable[..., Served], place: Path, mode: tuple[str, ...]
) -> None:
    secret, shared = _root_files(place)
    served = serve(*mode, "--allow-uid", str(ATTACKER))

    def attach_as(claim: int) -> int:
        return trio.run(_attach_errno, served.tcp, claim)

    assert as_ids(ATTACKER, ATTACKER, (), attach_as, 0) == errno.EPERM  # no claim of root
    assert as_ids(ATTACKER, ATTACKER, (), attach_as, FRIEND) == errno.EPERM

    async def attack(root: Fid) -> list[int]:
        f = await root.walk("shared")
        return [await errno_of(root.read_file("secret")), await errno_of(f.open(OpenFlag.WRONLY))]

    assert as_attacker(served.tcp, ATTACKER, attack) == [errno.EACCES, errno.EACCES]
    assert secret.read_text() == "root's" and shared.read_text() == "root's too"


def test_a_root_run_server_refuses_allow_uid_without_user_or_metadata(place: Path) -> None:
    command = [*SERVER, "--allow-root", "--export", f"C={place / 'c'}", "--allow-uid", "4242"]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "--allow-uid on a server that serves as root needs --user or --metadata" in out.stderr


@pytest.mark.parametrize(
    ("top", "own", "refused"),
    [("", "", True), ("metadata = true", "", False),
     ("metadata = true", "metadata = false", True)],
    ids=["C and D without", "every export with", "F turns it off"],
)  # fmt: skip
def test_allow_uid_as_root_needs_metadata_on_every_export(
    place: Path, top: str, own: str, refused: bool
) -> None:
    """Exports C, D, E (E with metadata of its own) and F: a bounded peer of a server run
    as root needs each export to enforce its permissions, by the server's flag or its own."""
    config = three_exports(place, f'allow-root = true\nallow-uid = ["{ATTACKER}"]\n{top}')
    (place / "f").mkdir()
    config.write_text(f'{config.read_text()}\n[export.F]\npath = "{place}/f"\n{own}\n')
    if not refused:
        assert cli.plan(cli.parse(["--config", str(config)])).allow_uids == [ATTACKER]
        return
    with pytest.raises(SystemExit, match="needs --user or --metadata: without them"):
        cli.plan(cli.parse(["--config", str(config)]))


def test_a_trusted_uid_is_taken_at_its_word(serve: Callable[..., Served], place: Path) -> None:
    _root_files(place)
    served = serve("--allow-root", "--metadata", "--trust-uid", str(ATTACKER))

    async def read_secret(root: Fid) -> str:
        return (await root.read_file("secret")).decode()

    assert as_attacker(served.tcp, 0, read_secret) == "root's"  # the VM's root, as said
    assert as_attacker(served.tcp, FRIEND, lambda root: errno_of(root.read_file("secret"))) == (
        errno.EACCES
    )


def test_a_bounded_peer_makes_objects_in_its_own_groups_only(
    serve: Callable[..., Served], place: Path
) -> None:
    served = serve("--allow-root", "--metadata", "--allow-uid", str(ATTACKER),
                   "--trust-uid", str(FRIEND))  # fmt: skip

    async def make(root: Fid, gid: int, name: str) -> list[int]:
        return [
            await errno_of(root.mkdir(f"{name}-dir", 0o755, gid)),
            await errno_of(root.mknod(f"{name}-fifo", stat.S_IFIFO | 0o644, gid=gid)),
            await errno_of(root.symlink(f"{name}-link", "target", gid)),
            await errno_of(
                (await root.clone()).create(f"{name}-file", OpenFlag.RDWR, 0o2755, gid=gid)
            ),
        ]

    bounded = as_attacker(served.tcp, ATTACKER, lambda root: make(root, 0, "root-group"))
    assert bounded == [errno.EPERM] * 4
    own = as_attacker(served.tcp, ATTACKER, lambda root: make(root, NOBODY, "own-group"))
    assert own == [0] * 4  # its primary group (a uid the host does not know: nogroup)
    trusted = as_attacker(served.tcp, FRIEND, lambda root: make(root, 0, "trusted"),
                          uid=FRIEND)  # fmt: skip
    assert trusted == [0] * 4  # a trusted peer's groups are the guest's: taken as said
    assert not [n for n in os.listdir(place / "c") if n.startswith("root-group")]
