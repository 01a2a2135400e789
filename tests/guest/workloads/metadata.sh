# POSIX metadata in extended attributes (docs/metadata.md): the server runs with
# --metadata; tests/test_guest_metadata.py boots it on its own and then checks
# that the host tree holds only regular files and directories with the
# expected attributes; a second boot (metadata_again.sh) finds them again.
# The guest mounts with access=client (the default for 9p2000.L): its kernel checks
# permissions itself and attaches once per guest uid.

M="$W/meta"
mkdir -p "$M"

# mode_owner PATH: "type+perms uid gid" as stat shows it.
mode_owner() {
    stat -c '%A %u %g' "$1"
}

t_meta_chmod_chown() {
    cd "$M"
    echo data >owned
    chmod 640 owned
    chown 1000:1001 owned
    eq here "$(mode_owner owned)" "-rw-r----- 1000 1001"
}
check meta_chmod_chown t_meta_chmod_chown

t_meta_special_types() {
    cd "$M"
    mkfifo fifo
    mknod chr c 1 3
    mknod blk b 8 1
    ln -s some/target link
    eq fifo "$(stat -c %A fifo | cut -c1)" p
    eq chr "$(stat -c '%A %t:%T' chr | cut -c1,11-)" "c 1:3"
    eq blk "$(stat -c '%A %t:%T' blk | cut -c1,11-)" "b 8:1"
    eq link "$(stat -c %A link | cut -c1)" l
    eq target "$(readlink link)" some/target
}
check meta_special_types t_meta_special_types

t_meta_fifo_io() {
    mkfifo "$M/pipe"
    cd / # busybox timeout leaves a watcher process behind: not in the mount
    timeout 20 sh -c "echo through the fifo >$M/pipe" &
    eq read "$(timeout 20 cat "$M/pipe")" "through the fifo"
    wait
}
check meta_fifo_io t_meta_fifo_io

t_meta_symlink_dir() {
    cd "$M"
    mkdir dir
    echo inside >dir/file
    ln -s dir dirlink
    eq through "$(cat dirlink/file)" inside
    eq listed "$(ls dirlink)" file
}
check meta_symlink_dir t_meta_symlink_dir

t_meta_hard_link() {
    cd "$M"
    echo one >h1
    ln h1 h2
    chmod 604 h2
    eq inode "$(stat -c %i h1)" "$(stat -c %i h2)"
    eq mode "$(stat -c '%a %h' h1)" "604 2"
}
check meta_hard_link t_meta_hard_link

t_meta_two_users() {
    echo 'alice:x:1000:1000::/tmp:/bin/sh' >>/etc/passwd
    echo 'bob:x:1001:1001::/tmp:/bin/sh' >>/etc/passwd
    mkdir -m 1777 "$M/users"
    su -s /bin/sh bob -c "echo bob only >$M/users/bobs && chmod 600 $M/users/bobs"
    eq stored "$(stat -c '%u %a' "$M/users/bobs")" "1001 600"
    eq bob_reads "$(su -s /bin/sh bob -c "cat $M/users/bobs")" "bob only"
    fails su -s /bin/sh alice -c "cat $M/users/bobs"
    fails su -s /bin/sh alice -c "rm -f $M/users/bobs"
    su -s /bin/sh alice -c "echo alice >$M/users/alices"
    eq alices "$(stat -c '%u' "$M/users/alices")" 1000
}
check meta_two_users t_meta_two_users

# stats DIR: type, mode, owner, group, device number and size of each entry of DIR.
stats() {
    cd "$1"
    for f in *; do
        stat -c '%n %A %u %g %t:%T %s' "$f"
    done
}

t_meta_cp_a() {
    T="$M/tree"
    mkdir -p "$T/sub"
    echo content >"$T/file"
    chmod 751 "$T/file"
    chown 1000:1001 "$T/file"
    mkfifo "$T/fifo"
    mknod "$T/chr" c 4 5
    mknod "$T/blk" b 7 9
    ln -s file "$T/link"
    chown -h 1001:1000 "$T/link"
    chmod 2750 "$T/sub"
    cp -a "$T" "$M/copy"
    eq stats "$(stats "$M/copy")" "$(stats "$T")"
    eq content "$(cat "$M/copy/file")" content
}
check meta_cp_a t_meta_cp_a
