# Third boot of tests/test_guest_metadata.py: metadata off, mounted with
# aname=C;uid=1000;gid=1001;umask=022;fmask=111 (WSL's defaults).

O="$W/off"
mkdir -p "$O"

t_meta_off_masks() {
    cd "$O"
    echo x >file
    mkdir dir
    eq file "$(stat -c '%A %u %g' file)" "-rw-r--r-- 1000 1001"
    eq dir "$(stat -c '%A %u %g' dir)" "drwxr-xr-x 1000 1001"
    fails mkfifo fifo
}
check meta_off_masks t_meta_off_masks
