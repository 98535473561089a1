"""Decode-ahead and encode-behind threads: same items in order, errors raised in the caller."""

import pytest

from stdo.background import BackgroundWriter, prefetch
from stdo.errors import StdoError


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(prefetch(range(100), depth=3)) == list(range(100))

    def broken():
        yield 1
        raise StdoError("video is truncated at frame 2")

    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(StdoError, match="truncated"):
        next(it)


def test_prefetch_stops_its_thread_when_the_consumer_leaves():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    count = len(produced)
    assert count <= 3 + 2 + 2 and len(produced) == count  # bounded look-ahead, then stopped


def test_background_writer_writes_in_order_and_reports_failures():
    class Sink:
        def __init__(self, fail_at=None):
            self.items, self.fail_at = [], fail_at

        def write(self, item):
            if item == self.fail_at:
                raise OSError("disk full")
            self.items.append(item)

    sink = Sink()
    writer = BackgroundWriter(sink, depth=2)
    for i in range(50):
        writer.write(i)
    writer.close()
    assert sink.items == list(range(50))
    writer = BackgroundWriter(Sink(fail_at=3))
    with pytest.raises(OSError, match="disk full"):
        for i in range(50):
            writer.write(i)
        writer.close()
