"""The codec's hand-written pieces: the frame header, the length prefixes of strings and
data, the error of a short body, and a reply sent in parts.

The encoders and decoders themselves are generated from each message's and
payload's one declaration in `ninep.messages` by `ninep.gencodec`
(`ninep._generated_codec`).
"""

from __future__ import annotations

import struct
from typing import Any

HEADER = struct.Struct("<IBH")  # size[4] type[1] tag[2]: every frame's
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")


class Short(Exception):
    """The body ends before its fields do, or goes on after them."""


def data_parts(msg: Any) -> list[Any]:
    """The frame of `msg`, a message whose last field is its `data`, in two parts to send
    one after the other: all that precedes the data, and the data where it lies (not
    copied into the frame)."""
    data = msg.data
    msg.data = b""
    try:
        head = bytearray(msg.encode())
    finally:
        msg.data = data
    U32.pack_into(head, 0, len(head) + len(data))  # the frame's size
    U32.pack_into(head, len(head) - U32.size, len(data))  # the data's count
    return [head, data]
