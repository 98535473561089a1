"""One writer at a time per stage output, and the sweeping of what killed writers left behind.

`stage_lock(folder, what)` holds an exclusive fcntl lock on `folder/.stdo.lock` for the duration of
a stage (train: RUN/models/<method>; cluster: the RUN; export: `.stdo-<bundle name>.lock` in the
bundle's parent; train and export also hold the RUN's lock shared, so no clustering rewrites it
under them).
The lock file holds the holder's pid and command (for a shared lock, the latest reader's), so a second
writer is refused with a line naming them. The kernel drops the lock when the holder dies, however it
dies (SIGKILL included): a lock file left behind by a killed run never blocks the next one. A lock file a
stage created is removed again when it ends (a writer whose input was refused leaves nothing behind).

Once the lock is held nobody else is writing there, so temp files of killed runs (`.NAME.*.tmp*`
files and folders, from stdo.fileio's atomic writes, and `.NAME.*.old` folders of an interrupted
folder swap) are removed: they can be GB-sized (frames, bundles).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator

from stdo.errors import StdoError
from stdo.fileio import restore_swapped

log = logging.getLogger(__name__)
LOCK_NAME = ".stdo.lock"
_LEFTOVER = re.compile(r"^\..+\.[^.]+\.(tmp.*|old)$")  # .NAME.RANDOM.tmp[.suffix] / .NAME.RANDOM.old


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def stage_lock(folder: Path, what: str, name: str = LOCK_NAME, shared: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock of `folder` (created if missing) while the block runs; refuse if held.

    shared: a reader's lock (train and export read the RUN that cluster writes): any number of readers, no
    writer while they read."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fresh = not path.exists()  # a lock file of its own is removed again, under the lock, when the stage ends
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StdoError(f"{what} is in use by another stdo process (last locked by {_holder(path)}): wait for it "
                            "to finish, or stop it") from None
        if not _same_file(fd, path):  # its holder removed it as we opened it: that holder has finished
            raise StdoError(f"{what} was in use by another stdo process a moment ago: run again")
        held = True
        command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command}".encode()[:500], 0)
        yield path
    finally:
        if held and not shared and (fresh or (created and [p.name for p in folder.iterdir()] == [name])):
            path.unlink(missing_ok=True)  # still locked: whoever opened it meanwhile sees it gone (_same_file)
            if created:  # the stage wrote nothing there: leave no trace
                with contextlib.suppress(OSError):
                    folder.rmdir()
        os.close(fd)  # releases the lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def is_leftover(path: Path) -> bool:
    """A temp file or folder of an atomic write, or the old folder of a swap (by its name)."""
    return bool(_LEFTOVER.match(Path(path).name))


def sweep_leftovers(folder: Path, recursive: bool = True, prefix: str = ".") -> int:
    """Remove temp files/folders of killed writers in `folder` whose names start with `prefix` (call only while
    holding the lock of what writes them); returns the bytes freed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    freed = 0
    for path in list(folder.rglob(".*") if recursive else folder.glob(".*")):
        if not is_leftover(path) or not path.name.startswith(prefix) or not path.exists():
            continue
        if restore_swapped(path):
            log.warning("restored the folder a killed run had moved aside into %s", path)
        if path.is_dir() and not path.is_symlink():
            freed += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path, ignore_errors=True)
        else:
            freed += path.lstat().st_size
            path.unlink(missing_ok=True)
        log.info("removed %s, left by a killed run", path)
    if freed:
        log.warning("removed %.1f MB of temp files left by a killed run in %s", freed / 1e6, folder)
    return freed
