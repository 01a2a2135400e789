"""What the server is doing: per-connection and total figures, readable from another process.

`Server.stats()` gives one JSON-ready dict; `--stats PATH` serves it on a unix
socket (connect, read one JSON document, the server closes), and
`python -m ninep.stats PATH` prints it. docs/operations.md lists the fields.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .version import version_line


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "requests": dict(self.requests),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "queued": self.queued,
        }


def process_figures() -> dict[str, int]:
    """Host descriptors open, their limit, and memory (resident now, and its peak), in bytes."""
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * page
    return {
        "descriptors": len(os.listdir("/proc/self/fd")) - 1,  # less the one listing them
        "descriptor_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "memory_resident": resident,
        "memory_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def total(connections: list[dict[str, Any]], closed: Counter[str]) -> dict[str, Any]:
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


def read(path: str) -> dict[str, Any]:
    """The figures a server serves on its `--stats` socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    result: dict[str, Any] = json.loads(data)
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
