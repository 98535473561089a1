"""Camera poses for a folder of images without any: COLMAP's incremental structure from motion (pycolmap, CPU SIFT).

Writes a COLMAP project (images/ and sparse/0, binary), which `read_views` reads like any other, so
pose similarity can order real photos. All views share one camera (frames of one video).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from stdo.errors import StdoError
from stdo.fileio import staged_dir
from stdo.views.scene import IMAGE_SUFFIXES

log = logging.getLogger(__name__)


def recover_poses(images: Path, out: Path) -> dict:
    """Run SfM on `images` into the project folder `out` (images copied in); the largest model is kept."""
    try:
        import pycolmap
    except ImportError:
        raise StdoError("structure from motion needs pycolmap: pip install 'stdo[views]'") from None
    images = Path(images)
    names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if images.is_dir() else []
    if len(names) < 2:
        raise StdoError(f"{images} holds {len(names)} image(s): structure from motion needs 2 or more")
    out = Path(out)
    with staged_dir(out) as tmp:
        shutil.copytree(images, tmp / "images", ignore=lambda d, files: [f for f in files if f not in names])
        with tempfile.TemporaryDirectory(prefix="stdo-sfm-") as work:
            database = Path(work) / "database.db"
            pycolmap.extract_features(database, tmp / "images", camera_mode=pycolmap.CameraMode.SINGLE,
                                      device=pycolmap.Device.cpu)
            pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
            models = pycolmap.incremental_mapping(database, tmp / "images", Path(work) / "sparse")
        if not models:
            raise StdoError(f"structure from motion registered no views of {images}: the views need overlap and "
                            "camera translation; use `similarity` feature instead")
        model = max(models.values(), key=lambda m: m.num_reg_images())
        (tmp / "sparse" / "0").mkdir(parents=True)
        model.write(str(tmp / "sparse" / "0"))
        registered = {im.name for im in model.images.values()}
        for name in names:  # a view SfM could not place has no pose: it leaves the project
            if name not in registered:
                (tmp / "images" / name).unlink()
    return {"views": len(names), "registered": len(registered), "points": model.num_points3D(),
            "reprojection_error": model.compute_mean_reprojection_error(), "out": str(out)}
