"""What the server is doing: per-connection and total figures, readable from another process.

`Server.stats()` gives one JSON-ready document (`Figures`, its parts typed
below); `--stats PATH` serves it on a unix socket (connect, read one JSON
document, the server closes), and `python -m ninep.stats PATH` prints it.
docs/operations.md lists the fields.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .version import version_line


class ConnectionFigures(TypedDict):
    """One open connection's figures."""

    peer: str
    requests: dict[str, int]  # served, by message name
    in_flight: int  # started and not yet answered
    peak_in_flight: int
    queued: int  # read, waiting for room to start
    fids: int
    open_files: int
    changes: int  # collected for its Tnotify and not yet sent


class ProcessFigures(TypedDict):
    """Host descriptors open, their limit, and memory (resident now, and its peak), in bytes."""

    descriptors: int
    descriptor_limit: int
    memory_resident: int
    memory_peak: int


class TotalFigures(ProcessFigures):
    """The whole server's: its open connections, requests of all (closed ones too)."""

    connections: int
    requests: dict[str, int]
    in_flight: int
    peak_in_flight: int
    fids: int


class Used(TypedDict):
    """A bound of all connections together, and how much of it is used."""

    used: int
    limit: int


class ConnectionsUsed(Used):
    per_peer_limit: int


class OpenFilesUsed(Used):
    per_connection_limit: int


class AdmissionFigures(TypedDict):
    """How loopback peers were found (`ninep.admission.PeerFinder`)."""

    asked_kernel: int
    scanned_proc: int
    sock_diag_refused: str | None  # why the kernel cannot be asked, once found


class ServerFigures(TypedDict):
    """The limits of all connections together, what is used of them, and admission."""

    connections: ConnectionsUsed
    fids: Used
    open_files: OpenFilesUsed
    refused: dict[str, int]  # connections refused, by reason
    admission: AdmissionFigures


#: An export's own figures (`ninep.backend.Export.stats`), JSON-ready; their shape is its own.
ExportFigures = Mapping[str, Any]  # the backend's own (volfs: `volfs.export.VolfsFigures`)


class Figures(TypedDict):
    """The document `Server.stats()` gives and `--stats` serves."""

    total: TotalFigures
    connections: list[ConnectionFigures]
    exports: dict[str, ExportFigures]  # by export name, of those that have figures
    server: ServerFigures


@dataclass(slots=True)
class ConnectionStats:
    """The figures of one connection."""

    peer: str
    requests: Counter[str] = field(default_factory=Counter)  # served, by message name
    in_flight: int = 0  # started and not yet answered
    peak_in_flight: int = 0
    queued: int = 0  # read, waiting for room to start

    def started(self, in_flight: int) -> None:
        self.in_flight = in_flight
        self.peak_in_flight = max(self.peak_in_flight, in_flight)

    def figures(self, fids: int, open_files: int, changes: int) -> ConnectionFigures:
        """These figures, with what the connection holds: `fids`, `open_files`, `changes`."""
        return {
            "peer": self.peer,
            "requests": dict(self.requests),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "queued": self.queued,
            "fids": fids,
            "open_files": open_files,
            "changes": changes,
        }


def process_figures() -> ProcessFigures:
    """This process's figures (`ProcessFigures`)."""
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * page
    return {
        "descriptors": len(os.listdir("/proc/self/fd")) - 1,  # less the one listing them
        "descriptor_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "memory_resident": resident,
        "memory_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def total(connections: list[ConnectionFigures], closed: Counter[str]) -> TotalFigures:
    """Figures of the whole server: its open `connections`, and requests of `closed` ones."""
    requests = Counter(closed)
    for c in connections:
        requests.update(c["requests"])
    return {
        "connections": len(connections),
        "requests": dict(requests),
        "in_flight": sum(c["in_flight"] for c in connections),
        "peak_in_flight": max((c["peak_in_flight"] for c in connections), default=0),
        "fids": sum(c["fids"] for c in connections),
        **process_figures(),
    }


def read(path: str) -> Figures:
    """The figures a server serves on its `--stats` socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    result: Figures = json.loads(data)
    return result


def parser() -> argparse.ArgumentParser:
    """`python -m ninep.stats`'s command line."""
    p = argparse.ArgumentParser(
        prog="python -m ninep.stats",
        description="Print the figures a ninep-server serves on its --stats socket, as JSON.",
    )
    p.add_argument("path", metavar="SOCKET", help="the server's --stats PATH")
    p.add_argument("--version", action="version", version=version_line("ninep.stats"))
    return p


def main(argv: list[str] | None = None) -> int:
    """`python -m ninep.stats PATH`: print a server's figures; one line and 1 if it cannot."""
    args = parser().parse_args(argv)
    try:
        figures = read(args.path)
    except FileNotFoundError:
        why = "no such socket (is a ninep-server running with --stats PATH?)"
    except ConnectionRefusedError:
        why = "nothing serves it (the server that made it has stopped)"
    except OSError as e:
        why = e.strerror or str(e)
    except ValueError as e:
        why = f"not a stats socket: {e}"
    else:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"python -m ninep.stats: {args.path}: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
