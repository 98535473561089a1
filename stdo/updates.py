"""A model file coded as an update of a file the client already carries (the prior's, same format and precision).

coding "xor-deflate": update = zlib(deflate)(file XOR base), where base is cut or zero-padded to the file's
length. A client rebuilds the file as inflate(update) XOR base and checks its sha256 against the manifest's,
so the rebuilt file is bit for bit the one export verified. zlib's format is what browsers' DecompressionStream
("deflate") reads, so the web player needs no codec of its own.

Where the per-video model changed little from the prior (a restricted update, `stdo-train --tune channels`,
leaves every int8 weight value as the prior's: only per-channel scales, biases and activation ranges move),
the XOR is mostly zeros and deflates to a few KB. The coding is exact whatever changed: a model trained
further from its prior costs more bytes, never a wrong file.
"""

from __future__ import annotations

import zlib

import numpy as np

from stdo.errors import StdoError

CODING = "xor-deflate"


class UpdateError(StdoError):
    """An update that does not inflate to its declared size, or rebuilds another file than declared."""


def _xor(data: bytes, base: bytes) -> bytes:
    a = np.frombuffer(data, np.uint8)
    b = np.zeros(len(a), np.uint8)
    head = np.frombuffer(base[: len(a)], np.uint8)
    b[: len(head)] = head
    return (a ^ b).tobytes()


def encode_update(data: bytes, base: bytes) -> bytes:
    """The update that rebuilds `data` from `base`."""
    return zlib.compress(_xor(data, base), 9)


def decode_update(update: bytes, base: bytes, size: int) -> bytes:
    """The file of `size` bytes that `update` rebuilds from `base`; inflation is bounded by `size` (no zip bomb)."""
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(update, size + 1)
    except zlib.error:
        raise UpdateError("the update is not deflate (zlib) data") from None
    if len(raw) != size or not inflate.eof or inflate.unconsumed_tail:
        raise UpdateError(f"the update inflates to {len(raw)}{'+' if not inflate.eof else ''} bytes, "
                          f"the manifest says {size}")
    return _xor(raw, base)
