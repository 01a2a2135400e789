"""drvfs: a FUSE filesystem that mounts a 9P2000.L export the way WSL mounts a Windows drive."""
