"""The opt-in `9p-kernel` targets: the Linux kernel's own 9p client in the QEMU guest of the
test harness (tests/guest: a Debian kernel, busybox and host tools in an initramfs),
mounting ninep-server (`9p-kernel-ninep`) or diod (`9p-kernel-diod`) over TCP.

One boot runs every workload the guest has tools for (no fio or Python there) as
busybox shell, each run timed by the guest's clock (/proc/uptime: 10 ms steps) and
checked there. A cold run unmounts and mounts again and drops the guest's caches;
the host's are dropped once, before the boot. Without KVM (the default here) the
guest is emulated (TCG): its figures say how the two servers compare under the same
kernel client, not how the kernel client compares with the host; results.json and
the table mark them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import procs
from .corpus import MIB, Corpus
from .results import Measurement
from .targets import Target, need
from .workloads import Workload

REPO = Path(__file__).resolve().parents[2]

#: workload -> (untimed preparation, the timed command, its check), busybox sh run in the
#: export's root. {names} are filled from `values()`.
SCRIPTS: dict[str, tuple[str, str, str]] = {
    "find": ("", "find tree >/tmp/out",
             'eq entries "$(grep -vc -e "^tree/\\.git$" -e "^tree/\\.git/" /tmp/out)" {entries}'),
    "stat": ("", "xargs stat -c %s </etc/guest/paths >/tmp/out",
             'eq lines "$(wc -l </tmp/out)" {paths}'),
    "ls-l": ("", "ls -l flat >/tmp/out", 'eq lines "$(grep -vc ^total /tmp/out)" {flat}'),
    "git-status": ("", "git -c core.fileMode=false -C tree status --porcelain >/tmp/out",
                   'eq status "$(cat /tmp/out)" ""'),
    "git-clone": ("rm -rf clone", 'git clone -q -u "$UPLOAD" file://$EXPORT/tree clone',
                  "git -C clone fsck --no-progress --strict"),
    "untar": ("rm -rf untar; mkdir untar", "tar -xf tree.tar -C untar",
              "cd untar && sha256sum -c --quiet /etc/guest/tree.sha256"),
    "rm-rf": ("rm -rf rmtree; mkdir rmtree; tar -xf tree.tar -C rmtree", "rm -rf rmtree",
              "[ ! -e rmtree ]"),
    "create-unlink": (
        "rm -rf storm; mkdir storm",
        "cd storm; i=0; while [ $i -lt {storm} ]; do echo 0123456789 >f$i; i=$((i + 1)); done; "
        "ls | wc -l >/tmp/out; rm -f f*",
        'eq created "$(cat /tmp/out)" {storm}; eq left "$(ls storm | wc -l)" 0',
    ),
    "rename": (
        "rm -rf rename; mkdir -p rename/a rename/b; i=0; "
        "while [ $i -lt {storm} ]; do echo $i >rename/a/f$i; i=$((i + 1)); done",
        "i=0; while [ $i -lt {storm} ]; do d=a; [ $((i % 2)) = 0 ] || d=b; "
        "mv rename/a/f$i rename/$d/renamed-$i; i=$((i + 1)); done",
        'eq left "$(ls rename/a | wc -l)" {even}; eq moved "$(ls rename/b | wc -l)" {odd}',
    ),
    "seq-write": ("rm -f written.bin",
                  "dd if=/dev/zero of=written.bin bs=1048576 count={seq} conv=fsync 2>/dev/null",
                  'eq sha256 "$(sha256sum <written.bin | cut -d" " -f1)" {zeros_sha256}'),
    "seq-read": ("", "dd if=big.bin of=/dev/null bs=1048576 2>/dev/null",
                 'eq sha256 "$(sha256sum <big.bin | cut -d" " -f1)" {big_sha256}'),
    "sqlite": ("rm -f bench.db bench.db-journal", "sqlite3 bench.db </etc/guest/inserts.sql",
               'eq rows "$(sqlite3 bench.db "SELECT count(*) FROM t")" {rows}; '
               'eq integrity "$(sqlite3 bench.db "PRAGMA integrity_check")" ok'),
}  # fmt: skip

PRELUDE = """
. /etc/guest/run.conf
git() { /usr/bin/git -c safe.directory='*' "$@"; }
# the guest has no git-upload-pack program: git clone runs the builtin through the shell
UPLOAD="git -c safe.directory='*' upload-pack"
remount() {
    cd /
    umount "$EXPORT" && mount -t 9p -o "$MOUNT_OPTIONS" 10.0.2.100 "$EXPORT"
    sync
    echo 3 >/proc/sys/vm/drop_caches
}
"""


def values(corpus: Corpus) -> dict[str, Any]:
    size = corpus.size
    return {
        "entries": len(corpus.files) + len(corpus.dirs) + 1,
        "paths": len(corpus.files) + len(corpus.dirs),
        "flat": size.flat_files,
        "storm": size.storm,
        "even": (size.storm + 1) // 2,
        "odd": size.storm // 2,
        "seq": size.seq_mib,
        "zeros_sha256": hashlib.sha256(bytes(size.seq_mib * MIB)).hexdigest(),
        "big_sha256": corpus.big_sha256,
        "rows": size.sqlite_rows // 100 * 100,
    }


def guest_files(corpus: Corpus) -> dict[str, bytes]:
    """The guest's inputs: the paths to stat, the tree's checksums, the sqlite script."""
    paths = "".join(f"tree/{p}\n" for p in sorted(set(corpus.files) | corpus.dirs))
    sums = "".join(f"{sha}  tree/{p}\n" for p, (_, sha) in sorted(corpus.files.items()))
    sql = ["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, value BLOB);"]
    for start in range(0, corpus.size.sqlite_rows // 100 * 100, 100):
        sql += ["BEGIN;", *(f"INSERT INTO t (name, value) VALUES ('row {i}', randomblob(200));"
                            for i in range(start, start + 100)), "COMMIT;"]  # fmt: skip
    return {"/etc/guest/paths": paths.encode(), "/etc/guest/tree.sha256": sums.encode(),
            "/etc/guest/inserts.sql": "\n".join(sql).encode() + b"\n"}  # fmt: skip


def script(names: list[str], corpus: Corpus, runs: int, cold: bool) -> str:
    """The guest's workload: each run of each workload as a timed check and its check."""
    fill = values(corpus)
    parts = [PRELUDE]
    for name in names:
        prepare, timed, verify = (part.format(**fill) for part in SCRIPTS[name])
        fn = name.replace("-", "_")
        parts.append(f't_{fn}() {{ cd "$EXPORT"; {timed}; }}\n'
                     f'v_{fn}() {{ cd "$EXPORT"; {verify}; }}\n')  # fmt: skip
        for run in range(1, runs + 1):
            if prepare:
                parts.append(f'(cd "$EXPORT" && {prepare})\n')
            if cold:
                parts.append("remount\n")
            parts.append(f"check {name}.r{run} t_{fn}\ncheck {name}.r{run}.verify v_{fn}\n")
    return "".join(parts)


def harness() -> Any:
    """tests/guest/vm.py of the source tree (the guest needs a checkout of the project)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.guest import vm

    return vm


class GuestTarget(Target):
    kind = "guest"
    description = "the Linux kernel's 9p client (trans=tcp) in a QEMU guest"

    @property
    def server(self) -> str:
        return self.name.removeprefix("9p-kernel-")

    @property
    def emulated(self) -> bool:
        return os.environ.get("NINEP_GUEST_KVM") != "1"

    @classmethod
    def supports(cls, workload: Workload) -> bool:
        return workload.name in SCRIPTS

    def missing(self) -> str | None:
        if not (REPO / "tests" / "guest" / "vm.py").exists():
            return "needs the project's source tree (tests/guest)"
        return need("qemu-system-x86_64", *(["diod"] if self.server == "diod" else []))

    @contextlib.contextmanager
    def serve(self, backing: Path) -> Iterator[tuple[int, str]]:
        """The server on a free loopback port; (port, aname)."""
        if self.server == "diod":
            self.command = ["diod", "-n", "-S", "-e", "BACKING"]
            with procs.diod_server(backing, self.log) as address:
                yield int(address.rpartition(":")[2]), str(backing)
        else:
            self.command = ["ninep-server", "--export", "C=BACKING"]
            with procs.ninep_server(backing, self.log) as address:
                yield int(address.rpartition(":")[2]), "C"

    def run_batch(
        self, workloads: list[Workload], corpus: Corpus, runs: int, cold: bool,
        say: Callable[[str], None],
    ) -> list[Measurement]:  # fmt: skip
        vm = harness()
        lib = (vm.WORKLOAD_DIR / "lib.sh").read_text()
        names = [w.name for w in workloads]
        procs.drop_caches()
        with self.serve(self.backing) as (port, aname):
            say(f"{self.name}: booting the guest{' (TCG, emulated)' if self.emulated else ''}")
            outcome = vm.run_guest(
                lib + script(names, corpus, runs, cold) + "\nfinish\n", port, self.options,
                aname=aname, timeout=3600, files=guest_files(corpus),
                console_log=self.workdir / "console.log",
            )  # fmt: skip
        if not outcome.mounted:
            raise procs.ChildError(f"the guest did not mount:\n{outcome.describe(30)}")
        out = []
        for name in names:
            m = Measurement(self.name, name)
            for run in range(1, runs + 1):
                key = f"{name}.r{run}"
                failed = [outcome.checks.get(k, "FAIL (no result)") for k in (key, f"{key}.verify")]
                if failed != ["OK", "OK"]:
                    m.error = f"run {run}: {' / '.join(failed)}"
                    break
                m.seconds.append(float(outcome.values[f"seconds.{key}"]))
            if name in ("seq-read", "seq-write"):
                m.work = corpus.size.seq_mib * MIB / 1e6
            out.append(m)
        return out

    def info(self) -> dict[str, Any]:
        note = ("TCG-emulated guest: compare with the other 9p-kernel target only"
                if self.emulated else "KVM guest")  # fmt: skip
        mount = ",".join(filter(None, ["trans=tcp,version=9p2000.L", self.options]))
        return {**super().info(), "emulated": self.emulated, "note": note,
                "mount": f"mount -t 9p -o {shlex.quote(mount)}"}  # fmt: skip
