"""The stdo-views subcommands, one module each (synth, order, upscale, evaluate), and what they share: the
folder marker that --overwrite checks, the order folder's layout and its reader."""

from __future__ import annotations

from pathlib import Path

from stdo.errors import StdoError
from stdo.grid import parse_grid
from stdo.options import Parsed
from stdo.fileio import JSONUnreadable, read_json

VIEW_SIZE = Parsed(parse_grid, lambda size: f"{size[0]}x{size[1]}", "size")  # WxH, read as a grid's COLSxROWS

MARKER = ".stdo-views"
SEQUENCES = "sequences.json"
FRAMES = "frames"


def claim(out: Path, overwrite: bool) -> None:
    """Refuse to replace a folder stdo-views did not write, or any without `overwrite`."""
    if out.exists():
        if not overwrite:
            raise StdoError(f"{out} exists: give another folder, or `overwrite` to replace it")
        if not (out / MARKER).is_file():
            raise StdoError(f"{out} was not written by stdo-views (no {MARKER}): give another folder; "
                            "`overwrite` replaces only folders stdo-views wrote")


def mark(tmp: Path, what: str) -> None:
    """Say in the folder that stdo-views wrote it (what --overwrite checks)."""
    (tmp / MARKER).write_text(f"{what} written by stdo-views; --overwrite may replace this folder\n")


def read_order(folder: Path) -> dict:
    path = Path(folder) / SEQUENCES
    try:
        record = read_json(path)
        record["sequences"][0]["views"]
    except FileNotFoundError:
        raise StdoError(f"{path} does not exist: give a folder written by stdo-views order") from None
    except (JSONUnreadable, KeyError, IndexError, TypeError):
        raise StdoError(f"{path} is malformed: rerun stdo-views order") from None
    return record
