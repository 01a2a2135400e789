# A 64 MiB file of random data: made in the guest's RAM and hashed there, written
# to the export with 1 MiB writes, then read back from the server (page cache
# dropped) and hashed again. The host compares VALUE bigfile_sha256 with the
# file in the export.

F="$W/big/random.bin"
mkdir -p "$W/big"

t_bigfile_write() {
    dd if=/dev/urandom of=/tmp/random.bin bs=1M count=64 iflag=fullblock 2>/dev/null
    sha256sum </tmp/random.bin | cut -d' ' -f1 >/tmp/random.sum
    value bigfile_sha256 "$(cat /tmp/random.sum)"
    dd if=/tmp/random.bin of="$F" bs=1M 2>/dev/null
    eq size "$(stat -c %s "$F")" 67108864
}
check bigfile_write t_bigfile_write

t_bigfile_readback() {
    rm -f /tmp/random.bin
    sync
    echo 3 >/proc/sys/vm/drop_caches
    eq sha256 "$(sha256sum <"$F" | cut -d' ' -f1)" "$(cat /tmp/random.sum)"
}
check bigfile_readback t_bigfile_readback
