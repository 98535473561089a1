"""Atomic file writes: a temp file beside the target, then os.replace.

A reader never sees a half-written file, and a crash mid-write leaves the earlier
version (if any) in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def temp_beside(target: Path, suffix: str = "") -> Path:
    """A new empty temp file in `target`'s folder (same filesystem, so os.replace is atomic), usual permissions."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
    os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; give the file the usual permissions
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `target`; move it over `target` only if the block succeeds."""
    tmp_path = temp_beside(Path(target), suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def sha256_of(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


class JSONUnreadable(ValueError):
    """The text is not JSON Python can hold: its class name says why (the caller words the error)."""


def parse_json(data: bytes | str) -> Any:
    """JSON text parsed; every way it can fail (syntax, encoding, nesting too deep, an integer past Python's
    4,300-digit limit) raises JSONUnreadable with the original error's class name, so each reader turns any of
    them into its one-line error."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JSONUnreadable(e.__class__.__name__) from None


def read_json(path: str | os.PathLike) -> Any:
    """parse_json of a file's bytes (OSError as it comes)."""
    return parse_json(Path(path).read_bytes())


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_bytes(target, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_npy(target: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def save_torch(target: str | os.PathLike, obj: Any) -> None:
    """torch.save through a buffer: torch's own writer turns a full disk into a RuntimeError with no errno, this
    way the write fails with the OSError (ENOSPC, EFBIG, ...) that names it."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(target, suffix=".pt") as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())


def save_npz(target: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def temp_dir_beside(target: Path) -> Path:
    """A new empty folder in `target`'s parent (same filesystem, so os.replace is atomic), usual permissions."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700
    return tmp


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """A new folder beside `target` to write into; when the block ends without an error it replaces `target`
    (replace_dir), and whatever happens nothing of it is left behind."""
    tmp = temp_dir_beside(Path(target))
    try:
        yield tmp
        replace_dir(tmp, Path(target))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def restore_swapped(old: Path) -> bool:
    """Put back the earlier folder a killed replace_dir left in `old` (its `.NAME.*.old` folder) when NAME is
    missing beside it; True if it did. Whoever sweeps leftovers calls this first, so a kill between the swap's
    two renames loses nothing."""
    old = Path(old)
    name = old.name[1:].rsplit(".", 2)[0] if old.name.startswith(".") and old.name.endswith(".old") else None
    if not name or not old.is_dir() or old.is_symlink():
        return False
    kept, target = old / name, old.parent / name
    if not kept.exists() or target.exists() or target.is_symlink():
        return False
    os.replace(kept, target)
    return True


def replace_dir(new: Path, target: Path) -> None:
    """Move the finished folder `new` to `target`; a folder already there is replaced only now, in two renames.

    If the second rename fails, the earlier folder is moved back before the error propagates, so
    `target` is never left missing with its old contents hidden beside it.
    """
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old)
