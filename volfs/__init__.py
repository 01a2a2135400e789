"""volfs: a host directory exported over 9P2000.L (the backend of `ninep.server`)."""
