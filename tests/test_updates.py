"""A coded update rebuilds its file exactly from the base, and codes what changed small."""

import zlib

import numpy as np
import pytest

from stdo.updates import OP, UpdateError, decode_update, encode_update, segments


def _plain_bytes(data: bytes, base: bytes) -> int:
    """The size of the plain coding: every segment XORed with the base where segments() found it."""
    ops = segments(data, base)
    body = bytearray(data)
    at = 0
    for length, offset in ops:
        if offset >= 0:
            for k in range(length):
                body[at + k] ^= base[offset + k]
        at += length
    return len(zlib.compress(b"".join(OP.pack(*op) for op in ops) + bytes(body), 9))


def test_an_update_rebuilds_a_file_whose_layout_shifted():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, 20000, np.uint8).tobytes()
    data = bytearray(base[:5000] + b"\x07\x07\x07" + base[5000:])  # three bytes inserted: the rest shifted
    data[12000] ^= 1
    update, ops = encode_update(bytes(data), base)
    assert bytes(decode_update(update, base, len(data), ops)) == bytes(data)
    assert len(update) < 200  # the shift costs a segment, not the rest of the file


def test_content_changed_wholesale_and_repeated_codes_as_its_repeats():
    """A retrained tensor's float scales appear once per TFLite signature: XORed with the old scales each copy is
    different noise, left literal the copies are repeats that deflate codes once."""
    rng = np.random.default_rng(1)
    base = bytearray(rng.integers(0, 256, 30000, np.uint8).tobytes())
    data = bytearray(base)
    fresh = rng.integers(0, 256, 1500, np.uint8).tobytes()
    for at in (2000, 12000, 22000):
        data[at:at + len(fresh)] = fresh
    update, ops = encode_update(bytes(data), bytes(base))
    assert bytes(decode_update(update, bytes(base), len(data), ops)) == bytes(data)
    assert len(update) < 0.6 * _plain_bytes(bytes(data), bytes(base))


def test_an_update_never_codes_larger_than_the_plain_coding():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, 8000, np.uint8).tobytes()
    data = bytearray(base)
    data[100:4100:7] = rng.integers(0, 256, len(range(100, 4100, 7)), np.uint8).tobytes()
    update, ops = encode_update(bytes(data), base)
    assert bytes(decode_update(update, base, len(data), ops)) == bytes(data)
    assert len(update) <= _plain_bytes(bytes(data), base)


def test_an_update_for_another_size_is_refused():
    base = bytes(range(256)) * 40
    data = base[:5000] + b"x" + base[5000:]
    update, ops = encode_update(data, base)
    with pytest.raises(UpdateError, match="inflates"):
        decode_update(update, base, len(data) - 1, ops)
