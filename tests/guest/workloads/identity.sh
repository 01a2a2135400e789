# Who a client is (issue 10): the server runs as a VM's should, as an ordinary
# user (--user nobody) with --metadata --case sensitive --client-groups, and the
# guest mounts with cache=none,access=client. tests/test_guest_identity.py boots
# it on its own, then checks on the host that the server's files are nobody's
# and carry no setuid, setgid or sticky bit.
#
# The guest's users (tests/guest/initramfs.py): member (uid 1000) is also in
# guestonly (gid 3000), a group the host does not know; stranger has uid 65533,
# a uid the host does not know; grouped (uid 65532, unknown to the host too) is
# in the guest's group 65534.

I="$W/ident"
mkdir -p "$I"
chmod 1777 "$I"

# run_as USER COMMAND: run COMMAND with sh as USER (and USER's groups in the guest).
run_as() {
    su -s /bin/sh "$1" -c "$2"
}

t_ident_member_groups() {
    eq groups "$(run_as member 'id -G' | tr ' ' '\n' | sort -n | tr '\n' ' ')" "1000 3000 "
}
check ident_member_groups t_ident_member_groups

# The kernel lets the owner chgrp to any group it is in; the host knows no
# group 3000, so only --client-groups lets that decision stand (else EPERM).
t_ident_chgrp_guest_group() {
    run_as member "echo mine >$I/grouped && chgrp 3000 $I/grouped"
    eq owner "$(stat -c '%u %g' "$I/grouped")" "1000 3000"
}
check ident_chgrp_guest_group t_ident_chgrp_guest_group

# chmod by a member of the file's group keeps setgid (by anyone else Linux
# clears it): the member's group is again the guest's, decided by the client.
t_ident_setgid_guest_group() {
    run_as member "echo mine >$I/sgid && chgrp 3000 $I/sgid && chmod 2750 $I/sgid"
    eq mode "$(stat -c '%a %g' "$I/sgid")" "2750 3000"
}
check ident_setgid_guest_group t_ident_setgid_guest_group

# In a setgid directory of that group, new objects take the group, and new
# directories the setgid bit.
t_ident_setgid_dir_guest_group() {
    run_as member "mkdir $I/sgdir && chgrp 3000 $I/sgdir && chmod 2775 $I/sgdir"
    run_as member "mkdir $I/sgdir/sub && echo mine >$I/sgdir/file"
    eq dir "$(stat -c '%a %g' "$I/sgdir")" "2775 3000"
    eq sub "$(stat -c '%a %u %g' "$I/sgdir/sub")" "2755 1000 3000"
    eq file "$(stat -c '%a %u %g' "$I/sgdir/file")" "644 1000 3000"
}
check ident_setgid_dir_guest_group t_ident_setgid_dir_guest_group

# A uid the host does not know is in no group: the "other" bits apply to it,
# also on a file whose group is 65534 (a server that invented membership of
# group 65534 gave EACCES here; Linux gives 0).
t_ident_unknown_uid_others() {
    echo "for others" >"$I/others"
    chown 65534:65534 "$I/others"
    chmod 0006 "$I/others"
    eq stored "$(stat -c '%a %u %g' "$I/others")" "6 65534 65534"
    eq id "$(run_as stranger 'id -u; id -G' | tr '\n' ' ')" "65533 65533 "
    eq read "$(run_as stranger "cat $I/others")" "for others"
    run_as stranger "exec 3<>$I/others && echo written by a stranger >&3"
    eq written "$(cat "$I/others")" "written by a stranger"
}
check ident_unknown_uid_others t_ident_unknown_uid_others

# A permission that turns on a membership the host cannot tell (POSIX suites'
# open/06): grouped is in group 65534 in the guest only; the guest kernel
# (access=client) allowed it, and with --client-groups the server follows.
t_ident_guest_group_access() {
    echo "for the group" >"$I/grouponly"
    chown 0:65534 "$I/grouponly"
    chmod 0060 "$I/grouponly"
    mkdir -p "$I/groupdir" && echo inside >"$I/groupdir/f"
    chown 0:65534 "$I/groupdir"
    chmod 0050 "$I/groupdir"
    eq id "$(run_as grouped 'id -G' | tr ' ' '\n' | sort -n | tr '\n' ' ')" "65532 65534 "
    eq read "$(run_as grouped "cat $I/grouponly")" "for the group"
    run_as grouped "exec 3<>$I/grouponly && echo written by the group >&3"
    eq written "$(cat "$I/grouponly")" "written by the group"
    eq searched "$(run_as grouped "cat $I/groupdir/f")" "inside"
    eq other "$(run_as stranger "cat $I/grouponly 2>/dev/null || echo refused")" "refused"
}
check ident_guest_group_access t_ident_guest_group_access

# A write by anyone but root clears setuid, and setgid when group-execute is
# set (without group-execute setgid marks mandatory locking and stays).
t_ident_write_clears_setid() {
    run_as member "echo one >$I/setid && chmod 6755 $I/setid"
    eq before "$(stat -c %a "$I/setid")" 6755
    run_as member "echo two >>$I/setid"
    eq after "$(stat -c %a "$I/setid")" 755
    eq content "$(cat "$I/setid")" "one
two"
    run_as member "echo one >$I/locking && chmod 2644 $I/locking && echo two >>$I/locking"
    eq no_group_exec "$(stat -c %a "$I/locking")" 2644
}
check ident_write_clears_setid t_ident_write_clears_setid

# Root's writes keep the bits (Linux: CAP_FSETID).
t_ident_root_write_keeps_setuid() {
    echo one >"$I/rootsuid"
    chmod 4755 "$I/rootsuid"
    echo two >>"$I/rootsuid"
    eq after "$(stat -c '%a %u' "$I/rootsuid")" "4755 0"
}
check ident_root_write_keeps_setuid t_ident_root_write_keeps_setuid
