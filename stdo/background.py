"""Decode ahead and encode behind: overlap a player's I/O with its inference in threads.

FFmpeg's decoders and encoders and most numpy work release the GIL, so while the runtimes
run the models a second thread can decode the next frames or encode the last ones. Errors
raised in the thread are raised again in the caller, in order.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[Any], depth: int = 8) -> Iterator[Any]:
    """Yield the items of `items`, produced by a background thread up to `depth` ahead."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            buffer.put(_Failure(e))

    thread = threading.Thread(target=produce, name="stdo-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundWriter:
    """Calls `writer.write(frame)` in a background thread; `close()` waits and raises its error, if any."""

    def __init__(self, writer: Any, depth: int = 8) -> None:
        self.writer = writer
        self.buffer: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._consume, name="stdo-encode", daemon=True)
        self.thread.start()

    def _consume(self) -> None:
        while (frame := self.buffer.get()) is not _DONE:
            if self.error is None:
                try:
                    self.writer.write(frame)
                except BaseException as e:  # noqa: BLE001 - raised again by write()/close()
                    self.error = e

    def write(self, frame: Any) -> None:
        if self.error is not None:
            raise self.error
        self.buffer.put(frame)

    def close(self) -> None:
        self.buffer.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error
