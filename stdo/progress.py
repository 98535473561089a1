"""The library's progress callbacks: how a long call says what it has done, for a CLI to draw (stdo.clitools).

A stage (cluster, export, play, deliver, views) calls `StageProgress(stage, done, total)`: `done` items of the
named step finished since the last call, of `total` (None: not known ahead). A loop inside a stage (decoding,
scoring) calls `CountProgress(done)`. Training reports its own richer rows (stdo.train.loop.ProgressFn) and a
fleet its finished videos (stdo.fleet.engine.Progress). Every callback is optional: None reports nothing.
"""

from __future__ import annotations

from typing import Callable

StageProgress = Callable[[str, int, "int | None"], None] | None
CountProgress = Callable[[int], None] | None
