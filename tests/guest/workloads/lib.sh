# Helpers for guest workloads (busybox sh). Sourced first by every workload script.
#
# A workload is a list of checks. "check NAME FUNC [ARGS...]" runs FUNC in a
# subshell with "set -e", so any failing command fails the check, and prints
# exactly one line: "CHECK NAME OK" or "CHECK NAME FAIL <detail>" (preceded by
# the check's output, indented, when it fails). "value NAME TEXT" reports a
# value for the host to compare ("VALUE NAME TEXT"); it may be used inside checks.
#
# $EXPORT is the mount point; $W (= $EXPORT/w) is the workloads' scratch area.

# Debian's static busybox runs its own applets before anything on $PATH; these
# functions make the host's GNU tools win where the names clash.
tar() { /usr/bin/tar "$@"; }
sha256sum() { /usr/bin/sha256sum "$@"; }

W="$EXPORT/w"
mkdir -p "$W"
CHECKS_FAILED=0
_CHECK_OUT=/tmp/check.out

value() {
    echo "VALUE $1 $2" >&3
}

# eq WHAT ACTUAL EXPECTED: fail (return 1) unless ACTUAL = EXPECTED.
eq() {
    if [ "$2" != "$3" ]; then
        echo "$1: got '$2', want '$3'"
        return 1
    fi
}

# fails CMD...: succeed only if CMD fails.
fails() {
    if "$@"; then
        echo "expected to fail: $*"
        return 1
    fi
    return 0
}

# Seconds since boot, with centiseconds.
uptime_s() {
    cut -d' ' -f1 </proc/uptime
}

check() {
    _name=$1
    shift
    _t0=$(uptime_s)
    (set -e; "$@") 3>&1 >"$_CHECK_OUT" 2>&1 </dev/null
    _rc=$?
    cd "$W"
    echo "VALUE seconds.$_name $(echo "$(uptime_s) $_t0" | awk '{printf "%.2f", $1 - $2}')"
    if [ "$_rc" -eq 0 ]; then
        echo "CHECK $_name OK"
    else
        CHECKS_FAILED=$((CHECKS_FAILED + 1))
        sed 's/^/    | /' "$_CHECK_OUT" | tail -n 20
        echo "CHECK $_name FAIL rc=$_rc: $(tail -n 3 "$_CHECK_OUT" | tr '\n' '|')"
    fi
}

# finish: exit with the number of failed checks (appended by load_workload).
finish() {
    exit "$CHECKS_FAILED"
}

cd "$W"
