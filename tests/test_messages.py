"""The codec: every message round-trips; malformed frames are refused with ProtocolError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from construct import Construct
from hypothesis import given
from hypothesis import strategies as st

from ninep import messages as m
from ninep.session import _frame_parts

_ints = {m.u8: 8, m.u16: 16, m.u32: 32, m.u64: 64}
_text = st.text(max_size=40)
_qids = st.builds(m.Qid, st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))


def _strategy(con: Construct) -> st.SearchStrategy[Any]:
    if con in _ints:
        return st.integers(0, 2 ** _ints[con] - 1)
    if con is m.string:
        return _text
    if con is m.data:
        return st.binary(max_size=200)
    if con is m.qid:
        return _qids
    if con is m.names:
        return st.lists(_text, max_size=16)
    if con is m.qids:
        return st.lists(_qids, max_size=16)
    if isinstance(con, m._Record):  # a dataclass inline: each of its fields
        fields = {f.name: _strategy(f.subcon) for f in con.subcon.subcons}
        return st.fixed_dictionaries(fields).map(lambda values: con.cls(**values))
    raise AssertionError(f"no strategy for {con}")


def _messages(kind: m.Kind) -> st.SearchStrategy[m.Message]:
    fields = {f.name: _strategy(f.subcon) for f in kind.layout}
    return st.builds(
        lambda tag, f: kind(tag, **f), st.integers(0, 0xFFFF), st.fixed_dictionaries(fields)
    )


@pytest.mark.parametrize("kind", list(m.KINDS.values()), ids=lambda k: k.__name__)
@given(data=st.data())
def test_every_message_round_trips(kind: m.Kind, data: st.DataObject) -> None:
    msg = data.draw(_messages(kind))
    frame = msg.encode()
    assert int.from_bytes(frame[:4], "little") == len(frame)
    assert m.decode(frame) == msg
    # the generated codec (ninep._generated_codec) agrees with the construct codec
    assert frame == msg.encode_reference()
    assert m.decode_reference(frame) == msg


def _outcome(decode: Callable[[bytes], object], frame: bytes) -> object:
    try:
        return decode(frame)
    except m.ProtocolError:
        return m.ProtocolError


@pytest.mark.parametrize("kind", list(m.KINDS.values()), ids=lambda k: k.__name__)
@given(data=st.data())
def test_the_fast_codec_refuses_what_the_reference_refuses(
    kind: m.Kind, data: st.DataObject
) -> None:
    """Valid frames cut short, lengthened or with bytes changed: both codecs decide alike."""
    frame = bytearray(data.draw(_messages(kind)).encode())
    for _ in range(data.draw(st.integers(0, 3))):
        pos = data.draw(st.integers(7, max(7, len(frame) - 1)))
        if pos < len(frame):
            frame[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(7, len(frame) + 3))
    body = bytes(frame[7:cut]) + b"\0" * max(0, cut - len(frame))
    whole = (7 + len(body)).to_bytes(4, "little") + bytes(frame[4:7]) + body
    assert _outcome(m.decode, whole) == _outcome(m.decode_reference, whole)


def test_out_of_range_fields_are_refused_by_both_codecs() -> None:
    for msg in (
        m.Tclunk(1, fid=2**32),
        m.Tflush(1, oldtag=-1),
        m.Rwalk(1, qids=[m.Qid(256, 0, 0)]),
    ):
        for encode in (msg.encode, msg.encode_reference):
            with pytest.raises(ValueError, match="cannot encode"):
                encode()


def _entries(payload: m.Payload[Any]) -> st.SearchStrategy[list[Any]]:
    fields = [_strategy(f.subcon) for f in payload.layout]
    return st.lists(st.tuples(*fields).map(lambda t: payload.cls(*t)), max_size=8)


@pytest.mark.parametrize("payload", m.PAYLOADS, ids=lambda p: p.cls.__name__)
@given(data=st.data())
def test_every_payload_round_trips(payload: m.Payload[Any], data: st.DataObject) -> None:
    """Each payload (Rreaddir's, Rreaddirattr's, Rnotify's data): both codecs agree, both
    ways, on entries and on plain tuples of their fields, and refuse a cut blob alike."""
    entries = data.draw(_entries(payload))
    blob = payload.encode(entries)
    assert len(blob) == sum(payload.size(e.name) for e in entries)
    assert blob == payload.encode([tuple(e) for e in entries])
    assert blob == payload.encode_reference(entries)
    assert payload.decode(blob) == entries
    assert payload.decode_reference(blob) == entries
    for cut in range(0, len(blob), max(1, len(blob) // 16)):
        cut_short = blob[:cut]
        assert _outcome(payload.decode, cut_short) == _outcome(payload.decode_reference, cut_short)


def test_the_payloads_are_their_messages_data() -> None:
    """The module's functions over each payload, and a Rreaddirattr entry that is a Rreaddir
    entry and then its attributes."""
    entry = m.ReaddirEntry(m.Qid(1, 2, 3), 4, 5, "n")
    attr = m.Attr.absent()
    assert m.decode_dirents(m.encode_dirents([entry])) == [entry]
    assert (
        m.encode_dirent_attrs([(*entry, attr)])
        == m.encode_dirents([entry]) + m.Rgetattr(attr=attr).encode()[7:]
    )
    change = m.Change(1, 2, 3, "x")
    assert m.decode_changes(m.encode_changes([change])) == [change]
    assert m.ReaddirattrEntry._fields == (*m.ReaddirEntry._fields, "attr")


def test_extension_numbers_are_apart_from_other_dialects() -> None:
    """180-197 and 214-215: not 9P2000/.u (100-127), .L (6-77), .e (150-155), gVisor
    (124-143, 250-251); the listing of exports after the second set (made at once)."""
    ids = {kind.id for kind in m.EXTENSIONS} | {kind.id + 1 for kind in m.EXTENSIONS}
    assert ids == set(range(180, 198)) | {214, 215}
    assert all(m.KINDS[i].__name__.endswith(("attr", "getattr")) for i in range(180, 192))
    assert {m.KINDS[192], m.KINDS[193]} == {m.Tnotify, m.Rnotify}
    assert {m.KINDS[214], m.KINDS[215]} == {m.Texports, m.Rexports}


def test_the_second_set_takes_the_numbers_that_follow() -> None:
    """198-213, below gVisor's Tchannel (250): Tnotifyflags, then the name changes that
    answer their directories' attributes."""
    ids = {kind.id for kind in m.EXTENSIONS_2} | {kind.id + 1 for kind in m.EXTENSIONS_2}
    assert ids == set(range(198, 214))
    assert {m.KINDS[198], m.KINDS[199]} == {m.Tnotifyflags, m.Rnotifyflags}
    assert all(m.KINDS[i].__name__.endswith("attrs") for i in range(200, 214))
    assert set(m.NOTIFIES) == {m.Tnotify, m.Tnotifyflags}


def test_names_that_are_not_utf8_round_trip() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert m.decode(m.Twalk(1, fid=0, newfid=1, wnames=[name]).encode()).fields["wnames"] == [name]


def test_trace_form() -> None:
    msg = m.Twalk(1, fid=0, newfid=1, wnames=["a", "b"])
    assert str(msg) == "Twalk tag 1 fid 0 newfid 1 wnames ['a', 'b']"
    assert str(m.Rread(3, data=b"xyz")) == "Rread tag 3 data <3 bytes>"


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"\x05\x00\x00\x00\x78", "shorter than the 7-byte header"),
        (b"\x08\x00\x00\x00\x78\x01\x00", "says 8 bytes but holds 7"),
        (b"\x07\x00\x00\x00\x01\x01\x00", "unknown message type 1"),
        (m.Tclunk(1, fid=3).encode()[:-1].replace(b"\x0b", b"\x0a", 1), "malformed Tclunk"),
        (m.Tclunk(1, fid=3).encode().replace(b"\x0b", b"\x0c", 1) + b"!", "malformed Tclunk"),
    ],
)
def test_malformed_frames(frame: bytes, error: str) -> None:
    with pytest.raises(m.ProtocolError, match=error):
        m.decode(frame)


def test_every_t_message_has_its_reply() -> None:
    for kind in m.KINDS.values():
        if issubclass(kind, m.Request):
            assert m.KINDS[kind.id + 1].__name__ == "R" + kind.__name__[1:]


def test_encode_refuses_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="cannot encode Tclunk"):
        m.Tclunk(1, fid=2**32).encode()


@given(st.sampled_from(sorted(m.KINDS)), st.integers(0, 0xFFFF), st.binary(max_size=64))
def test_random_bodies_parse_or_raise_protocol_error(type_: int, tag: int, body: bytes) -> None:
    frame = (7 + len(body)).to_bytes(4, "little") + bytes([type_]) + tag.to_bytes(2, "little")
    try:
        msg = m.decode(frame + body)
    except m.ProtocolError:
        return
    assert msg.encode() == frame + body


@given(
    st.sampled_from([m.Rread, m.Rreaddir, m.Rreaddirattr]),
    st.integers(0, 0xFFFF),
    st.binary(max_size=4096),
    st.integers(0, 0xFFFFFFFF),
)
def test_a_data_reply_sent_in_parts_is_its_frame(
    kind: type[m.Message], tag: int, data: bytes, flags: int
) -> None:
    """The server sends these replies' data where it lies, after a header of its own
    (`ninep.session`): together the parts are the frame the reference codec builds."""
    fields: dict[str, object] = {"data": data, "flags": flags}
    reply = kind(tag, **{name: fields[name] for name in kind.field_names})
    assert b"".join(_frame_parts(reply)) == reply.encode_reference()
