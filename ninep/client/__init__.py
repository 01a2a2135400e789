"""The trio 9P2000.L client: `async with connect(address) as client`, then `client.attach`."""

from ..backend import Attr, Dirent, Lock, SetAttr, StatFs
from .connection import Client, connect
from .fid import NOW, Changes, Fid, make_setattr

__all__ = [
    "NOW",
    "Attr",
    "Changes",
    "Client",
    "Dirent",
    "Fid",
    "Lock",
    "SetAttr",
    "StatFs",
    "connect",
    "make_setattr",
]
