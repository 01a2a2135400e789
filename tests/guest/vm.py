"""Boot the guest under QEMU, run a workload against a 9P server, parse the results."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .initramfs import base_initramfs, run_archive, write_initrd
from .kernel import ensure_host_packages, fetch_kernel

HERE = Path(__file__).resolve().parent
WORKLOAD_DIR = HERE / "workloads"

#: Default time limit for one boot, including the workload (TCG is slow).
DEFAULT_TIMEOUT = 600.0

_CHECK = re.compile(r"^CHECK (\S+) (OK|FAIL)\b ?(.*)$")
_VALUE = re.compile(r"^VALUE (\S+) ?(.*)$")
_MARKER = re.compile(r"@@GUEST (\S+) ?(.*)$")
_END = re.compile(r"END status=(\d+)")


@dataclass
class GuestRun:
    """Outcome of one guest boot."""

    console: str
    returncode: int | None
    timed_out: bool
    duration: float
    command: list[str]
    checks: dict[str, str] = field(default_factory=dict)  # name -> "OK" or "FAIL <detail>"
    values: dict[str, str] = field(default_factory=dict)  # name -> text (VALUE lines)
    exit_status: int | None = None  # the workload's exit status; None if it never ended
    booted: bool = False
    mounted: bool = False
    boot_seconds: float | None = None  # guest uptime when /init had the network up

    def tail(self, lines: int = 60) -> str:
        """Return the last lines of the guest console."""
        return "\n".join(self.console.splitlines()[-lines:])

    def describe(self, lines: int = 60) -> str:
        """Summarise the run for an assertion message (status plus console tail)."""
        state = "timed out" if self.timed_out else f"qemu exit {self.returncode}"
        return (
            f"guest run ({state}, {self.duration:.1f}s, booted={self.booted} "
            f"after {self.boot_seconds}s, "
            f"mounted={self.mounted}, workload status={self.exit_status})\n"
            f"--- guest console (last {lines} lines) ---\n{self.tail(lines)}"
        )

    def failed_checks(self) -> dict[str, str]:
        """Return the checks that did not report OK."""
        return {name: res for name, res in self.checks.items() if res != "OK"}


def parse_console(console: str, run: GuestRun) -> None:
    """Fill ``run`` from the console text: markers, CHECK and VALUE lines.

    Markers may follow terminal escape sequences on their line (the firmware and
    the kernel clear the screen), so they are searched for, not anchored.
    """
    in_workload = False
    for raw in console.splitlines():
        line = raw.rstrip("\r")
        marker = _MARKER.search(line)
        if marker is not None:
            word, rest = marker.groups()
            if word == "BOOTED":
                run.booted = True
                if (up := re.search(r"uptime=([0-9.]+)", rest)) is not None:
                    run.boot_seconds = float(up.group(1))
            elif word == "MOUNTED":
                run.mounted = True
            elif word == "WORKLOAD" and rest.startswith("BEGIN"):
                in_workload = True
            elif word == "WORKLOAD" and (end := _END.match(rest)) is not None:
                run.exit_status = int(end.group(1))
                in_workload = False
        elif in_workload and (check := _CHECK.match(line)) is not None:
            name, verdict, detail = check.groups()
            result = "OK" if verdict == "OK" else f"FAIL {detail}".rstrip()
            if name in run.checks:
                result = f"FAIL reported twice: {run.checks[name]!r} and {result!r}"
            run.checks[name] = result
        elif in_workload and (value := _VALUE.match(line)) is not None:
            run.values[value.group(1)] = value.group(2)


def load_workload(*names: str) -> str:
    """Concatenate ``workloads/<name>.sh`` files (after ``lib.sh``) into one script."""
    parts = [(WORKLOAD_DIR / "lib.sh").read_text()]
    for name in names:
        parts.append(f"\n# ---- workload {name} ----\n")
        parts.append((WORKLOAD_DIR / f"{name}.sh").read_text())
    parts.append("\nfinish\n")
    return "".join(parts)


def declared_checks(*names: str) -> list[str]:
    """Check names the workloads declare (``check NAME ...`` lines), plus init's ``umount``."""
    found: list[str] = []
    for name in names:
        text = (WORKLOAD_DIR / f"{name}.sh").read_text()
        found += re.findall(r"^check\s+(\S+)\s", text, flags=re.MULTILINE)
    return [*found, "umount"]


def available_workloads() -> list[str]:
    """Names of the workload scripts shipped in ``workloads/`` (without lib.sh)."""
    return sorted(p.stem for p in WORKLOAD_DIR.glob("*.sh") if p.stem != "lib")


def qemu_accel_args() -> list[str]:
    """TCG by default; KVM only when ``NINEP_GUEST_KVM=1`` (KVM hangs here at boot).

    ``NINEP_GUEST_CPU`` picks the emulated CPU model for TCG (default ``max``).
    """
    if os.environ.get("NINEP_GUEST_KVM") == "1":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg", "-cpu", os.environ.get("NINEP_GUEST_CPU", "max")]


def mount_option_string(mount_options: str, aname: str) -> str:
    """Full ``-o`` string for ``mount -t 9p``: the guest always dials 10.0.2.100:564."""
    opts = ["trans=tcp", "port=564", "version=9p2000.L"]
    if mount_options:
        opts.append(mount_options)
    if "," in aname:
        raise ValueError("the kernel cannot pass an aname containing ','")
    opts.append(f"aname={aname}")
    return ",".join(opts)


def run_guest(
    workload: str,
    port: int,
    mount_options: str,
    aname: str = "C",
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
    extra_qemu_args: Sequence[str] = (),
    console_log: Path | None = None,
) -> GuestRun:
    """Boot the guest, mount the 9P server listening on 127.0.0.1:``port``, run ``workload``.

    ``workload`` is the text of a busybox ``sh`` script (see :func:`load_workload`),
    run with the export mounted at ``$EXPORT`` (/mnt/c) as its working directory.
    ``mount_options`` is added to ``trans=tcp,port=564,version=9p2000.L`` (e.g.
    ``"msize=65536,cache=none"``); ``aname`` may contain ``;``. ``env`` adds exported
    variables and ``files`` extra guest files. The boot is killed after ``timeout``.
    The console is also written to ``console_log`` (if given) while the guest runs.
    """
    ensure_host_packages(["qemu-system-x86_64", *_tool_commands()])
    kernel = fetch_kernel()
    base = base_initramfs()
    options = mount_option_string(mount_options, aname)
    with tempfile.TemporaryDirectory(prefix="ninep-guest-") as tmp:
        initrd = write_initrd(
            Path(tmp) / "initrd.cpio", [base, run_archive(workload, options, env, files)]
        )
        command = [
            shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
            *qemu_accel_args(),
            "-nographic",
            "-no-reboot",
            "-m",
            "1024",
            "-smp",
            "2",
            "-kernel",
            str(kernel.vmlinuz),
            "-initrd",
            str(initrd),
            "-append",
            "console=ttyS0 quiet panic=-1",
            # restrict=on: the guest reaches nothing but the guestfwd'ed server.
            # ",,nodelay=on" (an escaped comma) sets TCP_NODELAY on QEMU's socket to
            # the server: without it Nagle's algorithm against the server's delayed
            # ACKs stalls every Twrite ~40 ms (64 MiB took 45 s instead of 4 s).
            "-netdev",
            f"user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:564-tcp:127.0.0.1:{port},,nodelay=on",
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
            *extra_qemu_args,
        ]
        return _boot(command, timeout, console_log or Path(tmp) / "console.log")


def _tool_commands() -> list[str]:
    """Host commands whose binaries are copied into the guest."""
    return ["git", "flock", "getfattr", "setfattr", "sqlite3", "tar", "sha256sum"]


_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def kill_all_guests() -> None:
    """Kill every QEMU process this module started that is still running."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def _boot(command: list[str], timeout: float, console_log: Path) -> GuestRun:
    """Run QEMU to completion (or until ``timeout``), its console going to ``console_log``."""
    start = time.monotonic()
    with open(console_log, "wb") as out:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    with _LIVE_LOCK:
        _LIVE.add(proc)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    console = console_log.read_bytes().decode(errors="replace").replace("\r\n", "\n")
    run = GuestRun(
        console=console,
        returncode=proc.returncode,
        timed_out=timed_out,
        duration=time.monotonic() - start,
        command=command,
    )
    parse_console(console, run)
    return run
