"""Tampering with a coded model update so that a client must notice it."""

import zlib


def flip_update_bit(data: bytearray) -> int:
    """Flip bit 0x40 of one byte of a coded update (zlib data), at the middle or the first byte after it where the
    flip changes what the update inflates to, or breaks it; returns that byte's index. A few bytes of a deflate
    stream (unused code lengths of its Huffman tables) can be flipped with the same output, and which bytes those
    are depends on the trained weights: a fixed index made the test fail now and then."""
    reference = zlib.decompress(bytes(data))
    for i in range(len(data) // 2, len(data)):
        data[i] ^= 0x40
        try:
            if zlib.decompress(bytes(data)) != reference:
                return i
        except zlib.error:
            return i
        data[i] ^= 0x40
    raise AssertionError("no byte in the update's second half changes it")
