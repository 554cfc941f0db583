"""The hub bench's lean WebSocket client reads RFC 6455 frames however the bytes arrive."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.bench._ws_client import FrameReader, accept_key, client_frame


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def feed_in_pieces(reader: FrameReader, stream: bytes, size: int) -> list[tuple[int, bytes]]:
    out = []
    for at in range(0, len(stream), size):
        out += reader.feed(stream[at : at + size])
    return out


def test_accept_key_is_the_rfc_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [1, 2, 3, 7, 125, 4096, 1 << 20])
def test_messages_of_every_length_class_survive_any_split(size: int) -> None:
    messages = [b"x" * 5, b"y" * 125, b"z" * 126, b"w" * 70_000, b'{"notification":1}']
    stream = b"".join(server_frame(0x1, m) for m in messages)
    got = feed_in_pieces(FrameReader(), stream, size)
    assert got == [(0x1, m) for m in messages]


def test_a_fragmented_message_is_reassembled_around_a_ping() -> None:
    stream = (
        server_frame(0x1, b"hel", fin=False)
        + server_frame(0x9, b"are you there")
        + server_frame(0x0, b"lo", fin=False)
        + server_frame(0x0, b" hub")
    )
    assert feed_in_pieces(FrameReader(), stream, 3) == [
        (0x9, b"are you there"),
        (0x1, b"hello hub"),
    ]


def test_compressed_messages_share_one_inflater_across_messages() -> None:
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    frames = b""
    messages = [b'{"notification": "first"}', b'{"notification": "first"} again']
    for m in messages:
        body = deflater.compress(m) + deflater.flush(zlib.Z_SYNC_FLUSH)
        frames += server_frame(0x1, body[:-4], rsv1=True)  # RFC 7692: the tail is dropped
    assert feed_in_pieces(FrameReader(inflate=True), frames, 5) == [(0x1, m) for m in messages]


def test_a_compressed_frame_without_the_extension_is_an_error() -> None:
    with pytest.raises(ValueError, match="permessage-deflate"):
        FrameReader().feed(server_frame(0x1, b"\x00", rsv1=True))


def test_a_masked_server_frame_is_an_error() -> None:
    with pytest.raises(ValueError, match="masked"):
        FrameReader().feed(bytes((0x81, 0x81)) + b"\x00\x00\x00\x00a")


@pytest.mark.parametrize("length", [0, 2, 125, 126, 70_000])
def test_client_frames_are_masked_and_unmask_to_the_payload(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    frame = client_frame(0xA, payload)
    assert frame[0] == 0x8A and frame[1] & 0x80
    n = frame[1] & 0x7F
    at = 2 if n < 126 else 4 if n == 126 else 10
    mask, body = frame[at : at + 4], frame[at + 4 :]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == payload
