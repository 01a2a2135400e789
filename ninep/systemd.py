"""systemd's protocols, without libsystemd: readiness (sd_notify) and socket activation.

`notify` sends a state (`READY=1`, `STOPPING=1`) to the datagram socket systemd
names in $NOTIFY_SOCKET (a unit of `Type=notify`); `activated_sockets` takes
the listening sockets a socket unit passed (descriptors 3 and up, counted by
$LISTEN_FDS, for this process by $LISTEN_PID). Both do nothing outside systemd.
"""

from __future__ import annotations

import os
import socket

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START


def notify(state: str) -> bool:
    """Tell systemd `state`; whether there was a systemd to tell."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(path)
        s.sendall(state.encode())
    return True


def activated_sockets() -> list[socket.socket]:
    """The sockets systemd passed to this process (none if it passed none), taken once: the
    variables are removed, so that no child takes them for its own."""
    pid, count = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "0")
    os.environ.pop("LISTEN_FDNAMES", None)
    if pid != str(os.getpid()) or not count.isdigit():
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def in_runtime_directory(path: str) -> bool:
    """Whether `path` lies in a directory systemd made for the service (`RuntimeDirectory=`,
    $RUNTIME_DIRECTORY), which systemd cleans up itself."""
    dirs = [d for d in os.environ.get("RUNTIME_DIRECTORY", "").split(":") if d]
    return any(os.path.dirname(os.path.abspath(path)) == os.path.abspath(d) for d in dirs)
