"""Harness that boots a QEMU guest to mount 9P servers with the Linux kernel client."""
