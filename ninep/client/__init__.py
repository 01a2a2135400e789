"""The trio 9P2000.L client: `async with connect(address) as client`, then `client.attach`."""

from ..backend import Attr, Dirent, Lock, SetAttr, StatFs
from .connection import Client, connect
from .fid import NOW, Fid, make_setattr

__all__ = [
    "NOW",
    "Attr",
    "Client",
    "Dirent",
    "Fid",
    "Lock",
    "SetAttr",
    "StatFs",
    "connect",
    "make_setattr",
]
