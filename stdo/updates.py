"""A model file coded as an update of a file the client already carries (the prior's, same format and precision).

coding "segment-xor-deflate": the file is cut into segments; each segment is XORed with a range of the base file
of the same length (or left as it is, a literal, where the base has nothing like it). The update is
zlib(ops table + segment bytes), and the manifest records the number of ops, so a client knows the inflated size
before it inflates and allocates. A client rebuilds the file segment by segment and checks its sha256 against
the manifest's, so the rebuilt file is bit for bit the one export verified. zlib's format is what browsers'
DecompressionStream ("deflate") reads, so the web player needs no codec of its own (android_demo/web/stdo/bundle.js
decodes the same layout).

Why segments, not one XOR at offset 0: a quantized file's layout can shift by a few bytes between trainings
(a tensor stored a byte shorter, a graph node renamed), and an XOR at a fixed offset then compares unrelated
bytes from the shift on. The encoder follows the base's bytes along "diagonals" (target offset - base offset)
and moves to another diagonal where a run of bytes unique in the base says the content continues there. Where
the content changed wholesale (a retrained tensor's float scales), XOR with the base is noise, and the encoder may
leave those bytes literal instead, so that deflate codes their repeats once (a TFLite file holds each tensor's
scales once per signature): it keeps whichever coding is smallest, and every client decodes them all the same way.

Where the per-video model changed little from the prior (a restricted update, `stdo-train --tune channels`,
leaves every int8 weight value as the prior's: only per-channel scales, biases and activation ranges move), the
XORed bytes are mostly zeros and deflate to a few KB. The coding is exact whatever changed: a model trained
further from its prior costs more bytes, never a wrong file.

Layout of the inflated update (little-endian): `ops` records of (uint32 length, int32 base offset, -1 for a
literal), then the file's bytes with every segment XORed with base[offset : offset + length].

Rebuilding on a client, in any language (stdo.bundle and the web player's bundle.js do this; an iOS app does the
same in Swift for CoreML, an Android app in Kotlin for LiteRT):

1. From the manifest's file entry take the file's `bytes` and `sha256` and its `update`: `path`, `sha256`, `ops`
   and `base` (the sha256 of the carried file it is coded against). Refuse the update when the app carries no file
   of that sha256, or when `ops` is not between 1 and min(65536, bytes).
2. Inflate the update into a buffer of exactly ops·8 + bytes, refusing any more. It is a zlib stream (RFC 1950):
   a 2-byte header, raw DEFLATE (RFC 1951), a 4-byte Adler-32. Decoders of raw DEFLATE (Apple's Compression
   framework with COMPRESSION_ZLIB, for one) take the bytes after the header; the trailer may go unchecked, since
   step 4 checks everything.
3. Walk the table with a running position p from 0: for each (length, offset), refuse unless p + length <= bytes
   and the offset is -1 (a literal: those bytes stay) or 0 <= offset with offset + length <= the base's size;
   XOR body[p : p + length] with base[offset : offset + length]; p += length. The lengths must add up to `bytes`.
4. Check the body's sha256 against the file entry's `sha256`, then use it: an .onnx or .tflite file as it is; an
   .mlpackage.zip holds the .mlpackage folder as stored (uncompressed) zip entries, to unzip and hand to
   MLModel.compileModel(at:).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from stdo.errors import StdoError

CODING = "segment-xor-deflate"
OP = struct.Struct("<Ii")
MAX_OPS = 1 << 16
ANCHOR = 16  # bytes: a run this long found once in the base moves the encoder to its diagonal
LITERAL = -1


class UpdateError(StdoError):
    """An update that does not inflate to its declared size, or names ranges outside the file or the base."""


def _unique_anchors(base: bytes) -> dict[bytes, int]:
    """Offset of every ANCHOR-byte run that occurs exactly once in `base`."""
    seen: dict[bytes, int] = {}
    for j in range(len(base) - ANCHOR + 1):
        key = base[j:j + ANCHOR]
        seen[key] = -1 if key in seen else j
    return {k: j for k, j in seen.items() if j >= 0}


def segments(data: bytes, base: bytes) -> list[tuple[int, int]]:
    """(length, base offset or LITERAL) of consecutive segments covering `data`, following `base`'s diagonals."""
    anchors = _unique_anchors(base)
    ops: list[list[int]] = []
    shift = 0  # base offset - data offset of the current diagonal; None: literal
    i = 0
    n = len(data)
    while i < n:
        j = i + shift if shift is not None else -1
        on_diagonal = shift is not None and 0 <= j and j + ANCHOR <= len(base) and data[i:i + ANCHOR] == base[j:j + ANCHOR]
        if not on_diagonal:
            found = anchors.get(data[i:i + ANCHOR])
            if found is not None:
                shift, on_diagonal = found - i, True
            elif shift is not None and not (0 <= i + shift < len(base)):
                shift = None
        offset = LITERAL if shift is None else i + shift
        if ops and ops[-1][1] != LITERAL and offset != LITERAL and ops[-1][1] + ops[-1][0] == offset:
            ops[-1][0] += 1
        elif ops and ops[-1][1] == LITERAL and offset == LITERAL:
            ops[-1][0] += 1
        else:
            ops.append([1, offset])
        if on_diagonal:  # a matching run: take it whole
            run = _common_run(data, i, base, i + shift)
            ops[-1][0] += run - 1
            i += run
        else:
            i += 1
    return [(length, offset) for length, offset in ops]


def _common_run(data: bytes, i: int, base: bytes, j: int) -> int:
    """How many bytes data[i:] and base[j:] have in common from the start (at least 1: the caller checked it)."""
    length = min(len(data) - i, len(base) - j)
    a = np.frombuffer(data, np.uint8, length, i)
    b = np.frombuffer(base, np.uint8, length, j)
    differ = np.flatnonzero(a != b)
    return int(differ[0]) if len(differ) else length


def _apply(body: np.ndarray, ops: list[tuple[int, int]], base: np.ndarray) -> None:
    at = 0
    for length, offset in ops:
        if offset != LITERAL:
            body[at:at + length] ^= base[offset:offset + length]
        at += length


# (block bytes, share of nonzero XORed bytes above which a block stays literal) of the codings encode_update tries
# beside the plain one: measured on int8 updates of bikes x4 (ONNX, CoreML, TFLite with 1 and 3 signatures)
LITERAL_WHERE_NOISY = ((32, 0.25), (64, 0.25), (64, 0.75))


def _literal_where_noisy(ops: list[tuple[int, int]], data: np.ndarray, base: np.ndarray, block: int,
                         share: float) -> list[tuple[int, int]]:
    """`ops` with each `block`-byte piece of a segment left literal where XOR with the base leaves more than `share`
    of its bytes nonzero (content that changed wholesale: XOR noise hides the repeats deflate would find in it)."""
    out: list[list[int]] = []

    def add(length: int, offset: int) -> None:
        if out and (out[-1][1] == offset == LITERAL or (LITERAL not in (offset, out[-1][1])
                                                        and out[-1][1] + out[-1][0] == offset)):
            out[-1][0] += length
        else:
            out.append([length, offset])

    at = 0
    for length, offset in ops:
        if offset == LITERAL:
            add(length, LITERAL)
        else:
            for k in range(0, length, block):
                n = min(block, length - k)
                xored = data[at + k:at + k + n] ^ base[offset + k:offset + k + n]
                add(n, LITERAL if np.count_nonzero(xored) > share * n else offset + k)
        at += length
    return [(length, offset) for length, offset in out]


def _coded(data: bytes, base: bytes, ops: list[tuple[int, int]]) -> bytes:
    body = np.frombuffer(data, np.uint8).copy()
    _apply(body, ops, np.frombuffer(base, np.uint8))
    return zlib.compress(b"".join(OP.pack(length, offset) for length, offset in ops) + body.tobytes(), 9)


def encode_update(data: bytes, base: bytes) -> tuple[bytes, int]:
    """(the update that rebuilds `data` from `base`, its number of ops: the manifest's `ops`): the smallest of the
    plain coding and the ones that leave noisy blocks literal (LITERAL_WHERE_NOISY), all read by the same decoder."""
    ops = segments(data, base)
    if len(ops) > MAX_OPS:  # a file with nothing in common: one literal
        ops = [(len(data), LITERAL)]
    d, b = np.frombuffer(data, np.uint8), np.frombuffer(base, np.uint8)
    tries = [ops, *(_literal_where_noisy(ops, d, b, block, share) for block, share in LITERAL_WHERE_NOISY)]
    coded = [(_coded(data, base, t), len(t)) for t in tries if len(t) <= MAX_OPS]
    return min(coded, key=lambda c: len(c[0]))


INFLATE_CHUNK = 1 << 20  # bytes of output zlib hands back at a time


def decode_update(update: bytes, base: bytes, size: int, ops: int) -> memoryview:
    """The file of `size` bytes that `update` (of `ops` segments) rebuilds from `base`.

    Memory is the declared size once: the update is inflated a chunk at a time into one buffer of exactly
    ops·8 + size bytes, refused as soon as it would run past it, and XORed in place; every segment is checked
    to lie inside the file and the base. (The caller bounds `size` by the base's: stdo.bundle.max_rebuilt_bytes.)
    """
    if not (isinstance(ops, int) and 1 <= ops <= min(MAX_OPS, size)):
        raise UpdateError(f"ops must be a whole number from 1 to {min(MAX_OPS, size)}")
    expected = ops * OP.size + size
    raw = bytearray(expected)
    filled = 0
    inflate = zlib.decompressobj()
    pending = update
    try:
        while not inflate.eof:
            out = inflate.decompress(pending, min(INFLATE_CHUNK, expected - filled + 1))
            if not out and len(inflate.unconsumed_tail) == len(pending):  # input exhausted: a truncated stream
                break
            if filled + len(out) > expected:
                raise UpdateError(f"the update inflates to more than the {expected} bytes its manifest's size and "
                                  "ops say")
            raw[filled:filled + len(out)] = out
            filled += len(out)
            pending = inflate.unconsumed_tail
    except zlib.error:
        raise UpdateError("the update is not deflate (zlib) data") from None
    if filled != expected or not inflate.eof or inflate.unused_data:  # unused_data: input past the stream's end
        raise UpdateError(f"the update inflates to {filled}{'+' if not inflate.eof else ''} bytes, "
                          f"the manifest's size and ops say {expected}")
    table = [OP.unpack_from(raw, k * OP.size) for k in range(ops)]
    if sum(length for length, _ in table) != size:
        raise UpdateError(f"the update's segments do not add up to the file's {size} bytes")
    if any(offset != LITERAL and not (0 <= offset and offset + length <= len(base)) for length, offset in table):
        raise UpdateError("the update names bytes outside the prior's file (made for another prior)")
    body = np.frombuffer(raw, np.uint8, size, ops * OP.size)  # a writable view of the buffer: XORed in place
    _apply(body, table, np.frombuffer(base, np.uint8))
    return memoryview(raw)[ops * OP.size:]  # the file's bytes, not copied
