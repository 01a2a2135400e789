# Basic file operations under $W/basic. The host checks the resulting files
# (tests/test_guest.py: test_host_sees_basic) after the guest has powered off.

B="$W/basic"
mkdir -p "$B"

t_create() {
    cd "$B"
    echo hello >created
    [ -f created ]
    eq size "$(stat -c %s created)" 6
    # O_EXCL create of an existing file must fail.
    fails sh -c 'set -C; echo again >created' 2>/dev/null
}
check create t_create

t_read() {
    cd "$B"
    eq content "$(cat created)" hello
    # A read at an offset.
    eq offset "$(dd if=created bs=1 skip=1 count=3 2>/dev/null)" ell
}
check read t_read

t_write() {
    cd "$B"
    printf 'abcdefgh' >written
    printf 'XY' | dd of=written bs=1 seek=3 conv=notrunc 2>/dev/null
    eq content "$(cat written)" abcXYfgh
    # A write past the end leaves a zero-filled hole.
    printf 'Z' | dd of=written bs=1 seek=10 conv=notrunc 2>/dev/null
    eq size "$(stat -c %s written)" 11
    eq hole "$(od -An -tx1 written | tr -d ' \n')" 616263585966676800005a
}
check write t_write

t_append() {
    cd "$B"
    echo one >appended
    echo two >>appended
    echo three >>appended
    eq content "$(tr '\n' ' ' <appended)" "one two three "
}
check append t_append

t_truncate() {
    cd "$B"
    printf '0123456789' >truncated
    truncate -s 4 truncated
    eq shrunk "$(cat truncated)" 0123
    truncate -s 100000 truncated
    eq size "$(stat -c %s truncated)" 100000
    eq tail "$(tail -c 4 truncated | od -An -tx1 | tr -d ' \n')" 00000000
    printf 'gone' >emptied
    : >emptied
    eq emptied "$(stat -c %s emptied)" 0
}
check truncate t_truncate

t_rename_same_dir() {
    cd "$B"
    echo moved >rename-src
    mv rename-src rename-dst
    [ ! -e rename-src ]
    eq content "$(cat rename-dst)" moved
    # Renaming over an existing file replaces it.
    echo new >replace-src
    echo old >replace-dst
    mv replace-src replace-dst
    [ ! -e replace-src ]
    eq replaced "$(cat replace-dst)" new
}
check rename_same_dir t_rename_same_dir

t_rename_cross_dir() {
    cd "$B"
    mkdir -p from/sub to
    echo travelling >from/file
    echo deep >from/sub/inner
    mv from/file to/file-renamed
    [ ! -e from/file ]
    eq file "$(cat to/file-renamed)" travelling
    # A whole directory moves too, and its contents stay reachable.
    mv from/sub to/sub-moved
    [ ! -e from/sub ]
    eq inner "$(cat to/sub-moved/inner)" deep
}
check rename_cross_dir t_rename_cross_dir

t_hardlink() {
    cd "$B"
    echo linked >hl-a
    ln hl-a hl-b
    eq inode "$(stat -c %i hl-b)" "$(stat -c %i hl-a)"
    eq nlink-a "$(stat -c %h hl-a)" 2
    eq nlink-b "$(stat -c %h hl-b)" 2
    echo more >>hl-b
    eq shared "$(tr '\n' ' ' <hl-a)" "linked more "
    # Removing one name leaves the other with one link.
    ln hl-a hl-c
    eq nlink-3 "$(stat -c %h hl-a)" 3
    rm hl-c
    eq nlink-back "$(stat -c %h hl-a)" 2
}
check hardlink t_hardlink

t_symlink() {
    cd "$B"
    ln -s created sl
    [ -L sl ]
    eq readlink "$(readlink sl)" created
    eq through "$(cat sl)" hello
    ln -s ../nowhere/at/all dangling
    eq dangling "$(readlink dangling)" ../nowhere/at/all
    [ ! -e dangling ]
    mkdir -p sldir
    ln -s ../created sldir/up
    eq up "$(cat sldir/up)" hello
}
check symlink t_symlink

t_chmod() {
    cd "$B"
    echo m >modes
    chmod 640 modes
    eq mode "$(stat -c %a modes)" 640
    chmod 4755 modes
    eq setuid "$(stat -c %a modes)" 4755
    chmod 600 modes
    eq mode2 "$(stat -c %a modes)" 600
    mkdir -p moddir
    chmod 711 moddir
    eq dirmode "$(stat -c %a moddir)" 711
}
check chmod t_chmod

t_chown() {
    cd "$B"
    echo o >owned
    chown 1234:5678 owned
    eq owner "$(stat -c %u:%g owned)" 1234:5678
    chown 0:0 owned
    eq back "$(stat -c %u:%g owned)" 0:0
    chown 4321:8765 owned
    eq final "$(stat -c %u:%g owned)" 4321:8765
}
check chown t_chown

t_mkdir_rmdir() {
    cd "$B"
    mkdir -p tree/a/b/c
    [ -d tree/a/b/c ]
    fails mkdir tree/a 2>/dev/null
    fails rmdir tree/a 2>/dev/null
    rmdir tree/a/b/c tree/a/b
    [ ! -e tree/a/b ]
    mkdir tree/kept
    rmdir tree/a
    eq listing "$(ls tree)" kept
}
check mkdir_rmdir t_mkdir_rmdir

t_unlink() {
    cd "$B"
    echo doomed >doomed
    rm doomed
    [ ! -e doomed ]
    fails cat doomed 2>/dev/null
    # An open file stays readable after its last name is removed.
    echo still-here >open-unlinked
    exec 4<open-unlinked
    rm open-unlinked
    eq open "$(cat <&4)" still-here
    exec 4<&-
}
check unlink t_unlink

t_bigdir() {
    mkdir -p "$B/bigdir"
    cd "$B/bigdir"
    # Long names so that listing needs several Treaddir replies at msize=65536.
    prefix=entry-with-a-rather-long-name-to-fill-readdir-buffers-quickly-0123456789abcdef-
    seq 1 1000 | sed "s/^/$prefix/" >/tmp/bigdir.want
    xargs touch </tmp/bigdir.want
    ls -1 | sort >/tmp/bigdir.got
    sort /tmp/bigdir.want >/tmp/bigdir.want.sorted
    eq count "$(wc -l </tmp/bigdir.got | tr -d ' ')" 1000
    cmp /tmp/bigdir.got /tmp/bigdir.want.sorted
    # find walks it with getdents too, including . entries seen once.
    eq find "$(find . -type f | wc -l | tr -d ' ')" 1000
}
check bigdir t_bigdir

t_statfs() {
    df "$EXPORT" >/tmp/df.out
    cat /tmp/df.out
    grep -q " $EXPORT\$" /tmp/df.out
    set -- $(stat -f -c '%b %S %a' "$EXPORT")
    value statfs "blocks=$1 bsize=$2 avail=$3"
    [ "$1" -gt 0 ]
    [ "$2" -gt 0 ]
}
check statfs t_statfs
