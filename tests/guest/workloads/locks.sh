# Locks between two guest processes: flock(2) via util-linux flock, and POSIX
# byte-range (fcntl) locks via two concurrent sqlite3 writers on one database.

L="$W/locks"
mkdir -p "$L"

t_flock() {
    cd "$L"
    : >flock.lock
    rm -f /tmp/flock.held /tmp/flock.release
    mkfifo /tmp/flock.held /tmp/flock.release
    # The holder says "held" once it owns the lock, then waits to be released.
    (flock flock.lock -c 'echo held >/tmp/flock.held; read x </tmp/flock.release' ||
        echo "holder-failed" >/tmp/flock.held) &
    holder=$!
    read -r state </tmp/flock.held
    eq holder "$state" held
    if flock -n flock.lock -c true; then second=acquired; else second=refused; fi
    if flock -n -s flock.lock -c true; then shared=acquired; else shared=refused; fi
    echo go >/tmp/flock.release
    wait "$holder"
    eq second-exclusive "$second" refused
    eq second-shared "$shared" refused
    # Released: now a non-blocking attempt succeeds.
    flock -n flock.lock -c true
}
check flock t_flock

t_sqlite() {
    cd "$L"
    db="$L/concurrent.sqlite"
    rm -f "$db" "$db-journal"
    sqlite3 "$db" 'CREATE TABLE t(writer TEXT NOT NULL, n INTEGER NOT NULL);'
    for w in a b; do
        {
            echo '.bail on'
            echo '.timeout 120000'
            i=0
            while [ "$i" -lt 100 ]; do
                echo "BEGIN IMMEDIATE; INSERT INTO t VALUES('$w', $i); COMMIT;"
                i=$((i + 1))
            done
        } >"/tmp/sql.$w"
    done
    # Both writers start together once the barrier fifo has its two lines.
    # Holding it open read-write here keeps unread lines from being lost.
    rm -f /tmp/sql.go
    mkfifo /tmp/sql.go
    exec 5<>/tmp/sql.go
    (read -r x </tmp/sql.go; exec sqlite3 "$db" </tmp/sql.a) >/tmp/sql.a.out 2>&1 &
    pa=$!
    (read -r x </tmp/sql.go; exec sqlite3 "$db" </tmp/sql.b) >/tmp/sql.b.out 2>&1 &
    pb=$!
    printf 'go\ngo\n' >&5
    ra=0
    wait "$pa" || ra=$?
    rb=0
    wait "$pb" || rb=$?
    exec 5>&-
    cat /tmp/sql.a.out /tmp/sql.b.out
    eq writer-a "$ra" 0
    eq writer-b "$rb" 0
    rows=$(sqlite3 "$db" "SELECT writer || ':' || count(*) || ':' || count(DISTINCT n) FROM t GROUP BY writer ORDER BY writer;" | tr '\n' ' ')
    eq rows "$rows" "a:100:100 b:100:100 "
    eq integrity "$(sqlite3 "$db" 'PRAGMA integrity_check;')" ok
}
check sqlite_fcntl_locks t_sqlite
