# Second boot of tests/test_guest_metadata.py, a new server on the same export:
# what metadata.sh stored is found again (modes, owners, types, device numbers).

M="$W/meta"

t_meta_persisted() {
    cd "$M"
    eq owned "$(stat -c '%A %u %g' owned)" "-rw-r----- 1000 1001"
    eq fifo "$(stat -c %A fifo | cut -c1)" p
    eq chr "$(stat -c '%A %t:%T' chr | cut -c1,11-)" "c 1:3"
    eq link "$(readlink link)" some/target
    eq hard "$(stat -c '%a %h' h1)" "604 2"
    eq bobs "$(stat -c '%u %a' users/bobs)" "1001 600"
}
check meta_persisted t_meta_persisted
