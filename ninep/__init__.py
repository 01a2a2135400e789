"""9P2000.L: the wire format, a trio server and a trio client."""
