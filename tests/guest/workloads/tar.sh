# Unpack a tar archive that the host put at $EXPORT/input.tar (GNU tar), and
# compare it in the guest with tar --diff; the host then compares file by file.

T="$W/untar"

t_untar() {
    [ -f "$EXPORT/input.tar" ]
    mkdir -p "$T"
    tar -x -p -f "$EXPORT/input.tar" -C "$T"
}
check untar t_untar

t_untar_compare() {
    tar --diff -f "$EXPORT/input.tar" -C "$T"
}
check untar_compare t_untar_compare
