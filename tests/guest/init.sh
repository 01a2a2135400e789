#!/bin/sh
# /init of the test guest: load the 9p/virtio modules, bring up eth0, mount the
# 9P export from 10.0.2.100:564 (QEMU forwards it to the server on the host's
# loopback), run /etc/guest/workload.sh between markers, unmount, power off.
# The host side (tests/guest/vm.py) parses the "@@GUEST" markers and CHECK lines.

export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
export HOME=/root TERM=dumb LANG=C.UTF-8 TZ=UTC
export EXPORT=/mnt/c

mark() { echo "@@GUEST $*"; }
die() {
    mark "FATAL $*"
    poweroff -f
    exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t tmpfs tmpfs /dev/shm
hostname guest

while read -r module; do
    [ -n "$module" ] || continue
    insmod "/usr/lib/modules/guest/$module.ko" || die "insmod $module failed"
done </etc/guest/modules

# virtio-net probes while its module loads; wait (bounded) until eth0 exists.
tries=0
until [ -e /sys/class/net/eth0 ]; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || die "no eth0"
    sleep 0.1
done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 || die "ip addr failed"
ip link set eth0 up || die "eth0 up failed"
ip route add default via 10.0.2.2 || die "default route failed"
mark "BOOTED $(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

. /etc/guest/run.conf
mark "MOUNT $MOUNT_OPTIONS"
if ! mount -t 9p -o "$MOUNT_OPTIONS" 10.0.2.100 "$EXPORT"; then
    mark "MOUNT FAILED"
    die "mount failed"
fi
mark "MOUNTED"

mark "WORKLOAD BEGIN"
(cd "$EXPORT" && exec sh /etc/guest/workload.sh)
status=$?
cd /
sync
if out=$(umount "$EXPORT" 2>&1); then
    echo "CHECK umount OK"
else
    echo "CHECK umount FAIL $out"
fi
mark "WORKLOAD END status=$status"
poweroff -f
