"""The delivery bundle's manifest, model map and plan: writing them, and reading them as untrusted input.

bundle/manifest.json (format "stdo-bundle", version 5):
  run_id (the clustering the models were trained on), tool, created, method,
  scale, lr_size [w, h], frames, fps, grid {cols, rows, margin},
  model_map {path, sha256, bytes, shape [T, rows, cols], coding}
                                                        (the model index serving each patch, coded through time:
                                                         null when one joint model serves every patch)
  plan {shapes [[h, w]...], margin, sha256}             (the inference plan's parameters: clients derive the
                                                         plan from the model map, stdo.plan.make_plan, and
                                                         check it against the digest of the one export made)
  video {path, sha256, bytes, codec, profile, pix_fmt, matrix, range, width, height, frames, fps,
         duration_s, bitrate_kbps}                      (the LR stream, as the RUN keeps it)
  models [{model, files: [{format, precision, path, sha256, bytes, input_shape, update?}]}]   (model i at index i)
      format torch (folded state dict, the reference), onnx, tflite (one signature per plan window shape, named
             w{h}x{w}; input_shape [1, 3, null, null]) or coreml; one file per model, format and precision
      update {path, sha256, bytes, coding, base}: the file is not in the bundle but coded against the carried
             prior file of sha256 `base` (stdo.updates); path, sha256 and bytes are the rebuilt file's
  prior                                                 (the sha256 of the prior the updates code against, or null)
  recommended {format, precision}                       (the variant the export's headline counts: what a client
                                                         plays by default where it has that runtime; absent or
                                                         null: the first of VARIANT_PREFERENCE it carries)

A plain bundle is the stream alone (`write_plain_bundle`): models [], model_map and plan null, grid 1x1 with no
margin, method "bicubic". A client plays it by bicubic upsampling (stdo.resample.upscale_bicubic; MATLAB's kernel)
by `scale`, which may then be 1: the HR stream itself, played as it decodes. stdo-deliver ships one where no model
earns its bytes, or where the HR stream beats every reduced scale.

A bundle is what a client downloads, so `read_bundle` trusts nothing: the schema and
version are checked, paths must be plain relative paths inside the bundle (no '..', no
absolute path, no link), every declared size is bounded and must match the file, every
sha256 is verified, model indices are in range and the model map's shape matches the video. The
video is probed before anything else is inflated: the frame size and count that bound every
later allocation are the file's own, not the manifest's claim. The plan is derived from the model map and
the manifest's window shapes and margin, and must match the manifest's digest of the plan export made.
Anything else raises BundleError with a message saying what is wrong.

modelmap.bin (coding "by-patch-zlib"): zlib (RFC 1950) of the T x rows x cols model indices ordered patch by
patch (rows, then columns), each patch's T indices in frame order. A patch's model changes seldom over time, so
each patch is a few long runs, which deflate codes in a few bits each (stdo-cluster --hold makes them longer).

What reading costs is bounded by the real video and the carried prior, never by a manifest's claim: the manifest
is at most 1 MiB; the video is probed before anything is inflated, and its own frame count T and size w x h
bound the grid (a patch is at least `min_patch(scale)` LR pixels a side, so rows x cols <= w·h / min_patch²),
the model map (T·rows·cols bytes) and the plan derived from it (at most T·rows·cols runs of 9 int32); a coded
model file inflates into one buffer of its declared size, itself at most `max_rebuilt_bytes` of the carried base
file it updates (twice the base and 64 KiB), beside the update and the base. A bundle that claims more is
refused before it is inflated.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

import stdo
from stdo.errors import FormatError
from stdo.fileio import JSONUnreadable, read_json, sha256_of, write_bytes, write_json
from stdo.grid import Grid
from stdo.metrics import min_patch
from stdo.plan import Plan, PlanError, check_parameters, digest, make_plan
from stdo.runtimes import FORMATS as RUNTIME_FORMATS
from stdo.video import open_video

# 2: the video is the RUN's own stream; 3: model map, plan of distinct frame plans; 4: the plan derived by
# clients, the model map coded across time
FORMAT, VERSION = "stdo-bundle", 5
MANIFEST = "manifest.json"
MODEL_MAP = "modelmap.bin"
MAP_CODING = "by-patch-zlib"
MAX_MODELS = 255
MAX_FILE_BYTES = 4 << 30  # no single artifact of a phone bundle is near this
MAX_MANIFEST_BYTES = 1 << 20
MAX_FRAMES, MAX_GRID, MAX_SIDE = 1 << 20, 1024, 16384
FORMATS = tuple(RUNTIME_FORMATS)
VIDEO_CODECS = ("h264", "hevc", "av1")
VIDEO_MATRICES = ("bt601", "bt709", "bt2020", "rgb")
VIDEO_FIELDS = ("codec", "profile", "pix_fmt", "matrix", "range", "width", "height", "frames", "fps", "duration_s",
                "bitrate_kbps")


# The variant a client plays when the bundle names none, or the one it names is missing: int8 first (the smallest
# download), ONNX before TFLite (its coded updates are the smaller).
VARIANT_PREFERENCE = (("onnx", "int8"), ("onnx", "fp32"), ("tflite", "int8"), ("tflite", "fp16"), ("tflite", "fp32"),
                      ("coreml", "int8"), ("coreml", "fp16"))


def variants_of(files: list[list[dict]]) -> list[tuple[str, str]]:
    """The (format, precision) variants every model of a bundle has files of, in VARIANT_PREFERENCE order."""
    common = set.intersection(*({(f["format"], f["precision"]) for f in model} for model in files)) if files else set()
    return [v for v in VARIANT_PREFERENCE if v in common]


# The client that plays each format: what a report names beside each variant's bytes.
CLIENT_OF_FORMAT = {"onnx": "web / onnxruntime", "tflite": "Android / LiteRT", "coreml": "iOS / CoreML"}


def bytes_per_variant(manifest: dict) -> dict[str, dict[str, int]]:
    """What a client of each variant ("onnx int8", "tflite int8", "coreml int8", ...) downloads: the LR stream, that
    variant's file of every model (its coded update where it has one), the model map. Only variants every model has
    are listed, in VARIANT_PREFERENCE order (torch files, the server's, are not a client's)."""
    files = [model["files"] for model in manifest["models"]]
    video = int(manifest["video"]["bytes"])
    model_map = int(manifest["model_map"]["bytes"]) if manifest.get("model_map") else 0
    out = {}
    for fmt, precision in variants_of(files):
        models = sum(int((f.get("update") or f)["bytes"]) for model in files for f in model
                     if (f["format"], f["precision"]) == (fmt, precision))
        out[f"{fmt} {precision}"] = {"video": video, "models": models, "model_map": model_map,
                                     "total": video + models + model_map}
    return out


def format_variant_bytes(per_variant: dict[str, dict[str, int]]) -> str:
    """One line: each client's download, e.g. 'onnx int8 (web / onnxruntime) 66,980 B · tflite int8 ...'."""
    return " · ".join(f"{name} ({CLIENT_OF_FORMAT[name.split()[0]]}) {b['total']:,} B" for name, b in per_variant.items())


def max_rebuilt_bytes(base_bytes: int) -> int:
    """The largest model file an update of a carried base file may rebuild: a model of the prior's architecture in
    the base's format and precision is about the base's size; twice that and 64 KiB leaves room for renamed or
    re-laid-out tensors, and bounds what a hostile manifest can make a client inflate."""
    return 2 * base_bytes + (64 << 10)


class BundleError(FormatError):
    """The bundle is malformed, tampered with, or from an unknown version."""

    what = "bundle"


@dataclass
class Bundle:
    root: Path
    manifest: dict
    model_map: np.ndarray | None  # uint8 [T, rows, cols]: the model index serving each patch; None: a plain bundle
    plan: Plan | None  # None: a plain bundle (no model; played by bicubic upsampling)
    coded: dict[str, CodedFile] = field(default_factory=dict)  # a coded model file's path -> how it is rebuilt
    rebuilt: dict[str, Path] = field(default_factory=dict)  # a coded model file's path -> the file rebuilt from it

    def file(self, entry: dict) -> Path:
        """The model file an entry names: shipped whole, or rebuilt from its update and the carried prior file (on
        first use, verified by its sha256, kept in the content-addressed cache); BundleError if it does not rebuild."""
        path = entry["path"]
        if path in self.coded and path not in self.rebuilt:
            self.rebuilt[path] = _rebuild(self.coded[path])
        return self.rebuilt.get(path, self.root / path)

    def rebuild_all(self) -> "Bundle":
        """Rebuild every coded model file now (what export checks before a bundle is seen); returns the bundle."""
        for coded in self.coded.values():
            self.file(coded.entry)
        return self

    # what a client asks of a bundle, typed; read_bundle has checked every field these read

    @property
    def scale(self) -> int:
        return int(self.manifest["scale"])

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def frames(self) -> int:
        return int(self.manifest["frames"])

    @property
    def grid(self) -> Grid:
        """The LR patch grid, with the margin of the export."""
        width, height = self.manifest["lr_size"]
        g = self.manifest["grid"]
        return Grid(height, width, g["rows"], g["cols"], g["margin"])

    @property
    def models(self) -> list[list[dict]]:
        """Each model's file entries (model i at index i)."""
        return [model["files"] for model in self.manifest["models"]]

    @property
    def plain(self) -> bool:
        """No model: the stream alone, upsampled bicubically by `scale` (1: the HR stream itself)."""
        return not self.manifest["models"]

    @property
    def video(self) -> dict:
        """The LR stream's entry (path, bytes, sha256 and what the container says)."""
        return self.manifest["video"]

    @property
    def model_map_bytes(self) -> int:
        """What the coded model map weighs (0: a single model serves every patch and none is shipped)."""
        entry = self.manifest.get("model_map")
        return int(entry["bytes"]) if entry else 0

    @property
    def prior(self) -> str | None:
        """The sha256 of the prior whose carried files the model updates are coded against, if any."""
        return self.manifest.get("prior")

    @property
    def bytes_per_variant(self) -> dict[str, dict[str, int]]:
        """What a client of each variant downloads (bytes_per_variant)."""
        return bytes_per_variant(self.manifest)

    @property
    def receptive_radius(self) -> int | None:
        radius = self.manifest.get("receptive_radius")
        return radius if isinstance(radius, int) else None


def cache_dir() -> Path:
    """Where rebuilt model files are kept, content-addressed by sha256: $STDO_CACHE or ~/.cache/stdo."""
    return Path(os.environ.get("STDO_CACHE") or Path.home() / ".cache" / "stdo") / "models"


def file_entry(root: Path, path: Path, **extra) -> dict:
    """Manifest entry of a file already written inside the bundle."""
    return {"path": path.relative_to(root).as_posix(), "sha256": sha256_of(path), "bytes": path.stat().st_size, **extra}


def _describe(path: Path) -> dict:
    with open_video(path) as video:
        return video.describe()


def video_entry(root: Path, path: Path, info: dict) -> dict:
    """Manifest entry of the LR stream: the file, and what `stdo.video.Video.describe` says of it."""
    return file_entry(root, path, **{k: info[k] for k in VIDEO_FIELDS})


def encode_model_map(model_map: np.ndarray) -> bytes:
    """modelmap.bin: the model map [T, rows, cols] patch by patch through time, deflated (see the module
    docstring)."""
    return zlib.compress(np.ascontiguousarray(np.asarray(model_map, np.uint8).transpose(1, 2, 0)).tobytes(), 9)


def decode_model_map(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """The model map [T, rows, cols] of modelmap.bin; inflates at most its T·rows·cols bytes (no zip bomb)."""
    expected = int(np.prod(shape))
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, expected + 1)
    except zlib.error:
        raise BundleError("bad bundle: model_map is not zlib data") from None
    _need(len(raw) == expected and inflate.eof and not inflate.unconsumed_tail,
          f"model_map holds {len(raw)} bytes, expected {expected}")
    frames, rows, cols = shape
    return np.ascontiguousarray(np.frombuffer(raw, np.uint8).reshape(rows, cols, frames).transpose(2, 0, 1))


def write_model_map(root: Path, model_map: np.ndarray) -> dict:
    path = root / MODEL_MAP
    write_bytes(path, encode_model_map(model_map))
    return file_entry(root, path, shape=list(model_map.shape), coding=MAP_CODING)


@dataclass(frozen=True)
class BundleContents:
    """What a model bundle's manifest describes, as stdo-export hands it to `write_manifest`."""

    method: str
    joint: bool  # one model serves every patch (no model map)
    scale: int
    grid: Grid
    frames: int
    fps: float
    model_map: np.ndarray | None  # None for a joint method
    plan: Plan
    video: Path  # the LR stream, already in the bundle's folder
    files: list[list[dict]]  # each model's file entries (file_entry, plus its coded update)
    receptive_radius: int
    model: str | None = None  # the model family's name (wdsr_a_mobile, ...)
    prior: dict | None = None  # the prior whose carried files the updates are coded against
    recommended: tuple[str, str] | None = None  # (format, precision) the headline counts and clients play
    run_id: str | None = None  # the clustering the models were trained on


def write_manifest(root: Path, contents: BundleContents) -> dict:
    """Write the bundle's model map and manifest.json (the layout read_bundle reads) around the model files
    and LR stream already in `root`; returns the manifest."""
    c = contents
    manifest = {
        "format": FORMAT, "version": VERSION,
        "tool": f"stdo {stdo.__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": c.run_id,
        "method": c.method, "joint": c.joint,
        "scale": c.scale, "lr_size": [c.grid.width, c.grid.height], "frames": c.frames, "fps": c.fps,
        "grid": {"cols": c.grid.cols, "rows": c.grid.rows, "margin": c.grid.margin},
        "window": list(c.grid.window_shape),
        "model_map": None if c.model_map is None else write_model_map(root, c.model_map),
        "plan": {"shapes": [list(shape) for shape in c.plan.shapes], "margin": int(c.plan.margin),
                 "sha256": digest(c.plan, c.scale)},
        "video": video_entry(root, c.video, _describe(c.video)),
        "model": c.model,
        "receptive_radius": c.receptive_radius,
        "models": [{"model": i, "files": f} for i, f in enumerate(c.files)],
        "prior": c.prior,
        "recommended": None if c.recommended is None else {"format": c.recommended[0], "precision": c.recommended[1]},
    }
    write_json(root / MANIFEST, manifest)
    return manifest


PLAIN_METHOD = "bicubic"  # what a plain bundle's client runs: no model
PLAIN_GRID = {"cols": 1, "rows": 1, "margin": 0}


def write_plain_bundle(root: Path, video: Path, *, scale: int, run_id: str | None = None) -> dict:
    """A plain bundle in `root` (created; must not exist): `video` (copied) alone, played by bicubic upsampling by
    `scale` (1: the stream is the HR stream itself); returns its manifest."""
    import shutil

    root.mkdir(parents=True)
    path = root / "video.mp4"
    shutil.copyfile(video, path)
    info = _describe(path)
    manifest = {
        "format": FORMAT, "version": VERSION,
        "tool": f"stdo {stdo.__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id, "method": PLAIN_METHOD, "joint": False,
        "scale": scale, "lr_size": [info["width"], info["height"]], "frames": info["frames"], "fps": info["fps"],
        "grid": dict(PLAIN_GRID), "window": None, "model_map": None, "plan": None,
        "video": video_entry(root, path, info), "model": None, "receptive_radius": None, "models": [], "prior": None,
    }
    write_json(root / MANIFEST, manifest)
    return manifest


# ---------------------------------------------------------------------------- reading


_need = BundleError.need


def _int(obj: dict, key: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    _need(isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi,
          f"{key} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _dict(obj, key: str) -> dict:
    value = obj.get(key) if isinstance(obj, dict) else None
    _need(isinstance(value, dict), f"{key} must be an object")
    return value


def _plain_relative(entry: dict, what: str) -> PurePosixPath:
    rel = entry.get("path")
    _need(isinstance(rel, str) and rel != "", f"{what}: path must be a non-empty string")
    pure = PurePosixPath(rel)
    _need(not pure.is_absolute() and "\\" not in rel and ":" not in rel, f"{what}: path {rel!r} must be relative")
    _need(all(part not in ("", ".", "..") for part in rel.split("/")), f"{what}: path {rel!r} must not use . or ..")
    return pure


def _safe_path(root: Path, entry: dict, what: str) -> Path:
    """The file an entry names, if it is a plain relative path to a regular file inside the bundle."""
    pure = _plain_relative(entry, what)
    rel = entry["path"]
    path = root.joinpath(*pure.parts)
    for parent in [path, *path.parents]:
        if parent == root:
            break
        _need(not parent.is_symlink(), f"{what}: {rel!r} goes through a link")
    _need(path.is_file(), f"{what}: {rel!r} is missing")
    _need(os.path.realpath(path).startswith(os.path.realpath(root) + os.sep), f"{what}: {rel!r} leaves the bundle")
    return path


def _checked_file(root: Path, entry, what: str) -> Path:
    _need(isinstance(entry, dict), f"{what} must be an object")
    path = _safe_path(root, entry, what)
    size = _int(entry, "bytes", 0, MAX_FILE_BYTES)
    _need(path.stat().st_size == size, f"{what}: {entry['path']} is {path.stat().st_size} bytes, manifest says {size}")
    digest = entry.get("sha256")
    _need(isinstance(digest, str) and len(digest) == 64, f"{what}: sha256 must be 64 hex digits")
    _need(sha256_of(path) == digest, f"{what}: {entry['path']} fails its sha256 check (tampered or corrupt)")
    return path


@dataclass(frozen=True)
class CodedFile:
    """A model file shipped as an update, checked as far as it can be without rebuilding it: its entry, the update
    file in the bundle and the carried prior file it is coded against."""

    entry: dict
    what: str  # where the manifest names it, for messages
    update: Path
    base: Path


def _check_update(root: Path, entry: dict, what: str, priors: Path | None) -> CodedFile:
    """What read_bundle checks of a coded entry (reading only): its fields, the update file, the carried prior file
    (present, undamaged) and the size it claims; the rebuild itself waits for the file's first use."""
    from stdo.priors import PRIORS_DIR, base_file
    from stdo.updates import CODING

    size = _int(entry, "bytes", 1, MAX_FILE_BYTES)
    digest = entry.get("sha256")
    _need(isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
          f"{what}: sha256 must be 64 hex digits")
    update = entry["update"]
    update_path = _checked_file(root, update, f"{what}.update")
    _need(update.get("coding") == CODING, f"{what}.update: coding must be {CODING}")
    base_id = update.get("base")
    base = base_file(base_id, priors or PRIORS_DIR) if isinstance(base_id, str) else None
    if base is None or not base.is_file():
        raise BundleError(f"the bundle's models update a prior this client does not carry (base file "
                          f"{str(base_id)[:12]}...): install the stdo that made the bundle, or export it "
                          "again (stdo-export with `update='off'`)")
    _need(sha256_of(base) == base_id, f"the carried prior file {base} is damaged: reinstall stdo")
    limit = max_rebuilt_bytes(base.stat().st_size)
    _need(size <= limit, f"{what}: a file of {size} bytes cannot be an update of a {base.stat().st_size}-byte prior "
                         f"file (at most {limit})")
    return CodedFile(entry, what, update_path, base)


def _rebuild(coded: CodedFile) -> Path:
    """The model file rebuilt from its update and the carried prior file, verified by its sha256, in the
    content-addressed cache; raises BundleError for anything that does not rebuild it exactly."""
    from stdo.updates import UpdateError, decode_update

    entry, what = coded.entry, coded.what
    digest = entry["sha256"]
    cached = cache_dir() / digest / PurePosixPath(entry["path"]).name
    try:
        data = decode_update(coded.update.read_bytes(), coded.base.read_bytes(), entry["bytes"],
                             entry["update"].get("ops"))
    except UpdateError as e:
        raise BundleError(f"bad bundle: {what}.update: {e}") from None
    _need(hashlib.sha256(data).hexdigest() == digest,
          f"{what}.update does not rebuild {entry['path']} (tampered, or made for another prior)")
    if not (cached.is_file() and sha256_of(cached) == digest):  # content-addressed: a file there is kept as it is
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(cached, data)
    return cached


def _read_model_map(root: Path, entry: dict, frames: int, rows: int, cols: int, models: int) -> np.ndarray:
    path = _checked_file(root, entry, "model_map")
    shape = entry.get("shape")
    _need(shape == [frames, rows, cols], f"model_map shape {shape!r} does not match frames x grid {[frames, rows, cols]}")
    _need(entry.get("coding") == MAP_CODING, f"model_map: coding must be {MAP_CODING}")
    model_map = decode_model_map(path.read_bytes(), (frames, rows, cols))
    _need(int(model_map.max()) < models, f"model_map names model {int(model_map.max())}, the bundle has {models}")
    return model_map


def read_bundle(root: Path, priors: Path | None = None) -> Bundle:
    """Read and verify a bundle (reading only); raises BundleError on anything unexpected. Coded model files are
    checked against the priors the client carries (`priors`, default the package's) and rebuilt on first use
    (`Bundle.file`), so a player rebuilds the variant it runs alone; `Bundle.rebuild_all` rebuilds them all."""
    root = Path(root)
    manifest_path = root / MANIFEST
    _need(not manifest_path.is_symlink(), f"{MANIFEST} is a link: a bundle's files are its own (copy it in)")
    _need(manifest_path.is_file(), f"{root} has no {MANIFEST}")
    _need(manifest_path.stat().st_size <= MAX_MANIFEST_BYTES, f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = read_json(manifest_path)
    except JSONUnreadable as e:
        raise BundleError(f"bad bundle: {MANIFEST} is not JSON ({e})") from None
    _need(isinstance(manifest, dict) and manifest.get("format") == FORMAT, f"{MANIFEST} is not a {FORMAT} manifest")
    _need(manifest.get("version") == VERSION, f"version {manifest.get('version')!r} is not {VERSION}: update stdo")

    models = manifest.get("models")
    _need(isinstance(models, list) and len(models) <= MAX_MODELS, f"models must list 0..{MAX_MODELS} models")
    plain = not models  # the stream alone: played by bicubic upsampling, at scale 1 the HR stream as it decodes
    _int(manifest, "scale", 1 if plain else 2, 8)
    lr_size = manifest.get("lr_size")
    _need(isinstance(lr_size, list) and len(lr_size) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in lr_size),
          "lr_size must be [width, height]")
    frames = _int(manifest, "frames", 1, MAX_FRAMES)
    grid = _dict(manifest, "grid")
    patch = min_patch(manifest["scale"])  # a patch is at least this many LR pixels a side (stdo-cluster's rule)
    cols = _int(grid, "cols", 1, min(MAX_GRID, max(1, lr_size[0] // patch)))
    rows = _int(grid, "rows", 1, min(MAX_GRID, max(1, lr_size[1] // patch)))
    _int(grid, "margin", 0, 1024)
    fps = manifest.get("fps")
    _need(isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= 1000, "fps must be in (0, 1000]")

    recommended = manifest.get("recommended")
    if recommended is not None:  # a name only: a client without that variant plays the next it has
        _need(isinstance(recommended, dict) and isinstance(recommended.get("format"), str)
              and recommended["format"] in RUNTIME_FORMATS
              and recommended.get("precision") in RUNTIME_FORMATS[recommended["format"]].precisions,
              "recommended must name a format and one of its precisions")
    video = _dict(manifest, "video")
    _checked_file(root, video, "video")
    _need(video.get("codec") in VIDEO_CODECS, f"video: codec must be one of {', '.join(VIDEO_CODECS)}")
    _need(video.get("matrix") in VIDEO_MATRICES and video.get("range") in ("limited", "full"),
          "video: matrix and range must name the stream's colour (bt601/bt709/bt2020/rgb, limited/full)")
    _need(video.get("width") == lr_size[0] and video.get("height") == lr_size[1],
          f"video: {video.get('width')}x{video.get('height')} does not match lr_size {lr_size}")
    _need(video.get("frames") == frames, f"video: {video.get('frames')!r} frames, the manifest says {frames}")
    _need(all(isinstance(video.get(k), str) and len(video[k]) <= 64 for k in ("profile", "pix_fmt")),
          "video: profile and pix_fmt must be short strings")
    # sizes are trusted only once the video itself confirms them: every later allocation (the model map,
    # the plan's coverage check) is bounded by the real stream, not by what the manifest claims
    try:
        actual = _describe(_safe_path(root, video, "video"))
    except Exception as e:  # noqa: BLE001 - a damaged or hostile file, whatever the demuxer raises
        raise BundleError(f"bad bundle: video: not a readable video ({e.__class__.__name__})") from None
    _need((actual["width"], actual["height"], actual["frames"]) == (lr_size[0], lr_size[1], frames),
          f"video: the file is {actual['width']}x{actual['height']} with {actual['frames']} frames, the manifest "
          f"says {lr_size[0]}x{lr_size[1]} with {frames}")
    wrong = [k for k in VIDEO_FIELDS if video.get(k) != actual[k]]  # a client converts colour and times frames by these
    _need(not wrong, f"video: the manifest's {', '.join(wrong)} differ from the file's own "
                     f"({', '.join(f'{k} {actual[k]!r}' for k in wrong)})")
    _need(fps == actual["fps"], f"fps {fps!r} is not the video's {actual['fps']!r}")
    if plain:
        _need(manifest.get("model_map") is None and manifest.get("plan") is None and grid == PLAIN_GRID
              and manifest.get("prior") is None,
              f"a bundle without models has no model_map, plan or prior, and grid {PLAIN_GRID}")
        return Bundle(root, manifest, None, None)
    if manifest.get("model_map") is None and len(models) == 1:  # a single (joint) model serves every patch
        model_map = np.zeros((frames, rows, cols), np.uint8)
    else:
        model_map = _read_model_map(root, _dict(manifest, "model_map"), frames, rows, cols, len(models))
    plan_entry = _dict(manifest, "plan")
    grid_geometry = Grid(lr_size[1], lr_size[0], rows, cols)
    try:
        shapes = check_parameters(plan_entry.get("shapes"), plan_entry.get("margin"), grid_geometry)
    except PlanError as e:
        raise BundleError(str(e)) from None
    plan = make_plan(model_map, grid_geometry, plan_entry["margin"], shapes)
    _need(digest(plan, manifest["scale"]) == plan_entry.get("sha256"),
          "plan: the plan derived from the model map is not the one export made (a tampered map, scale or manifest, "
          "or another stdo's planner)")
    coded, paths = {}, set()

    def claim(path: str, what: str) -> None:
        """No file serves two entries (no label can be moved onto another file)."""
        _need(path not in paths, f"{what}: {path!r} is named twice")
        paths.add(path)

    claim(video["path"], "video")
    if manifest.get("model_map") is not None:
        claim(manifest["model_map"]["path"], "model_map")
    for i, model in enumerate(models):
        _need(isinstance(model, dict) and model.get("model") == i, f"models[{i}] must be model {i}")
        files = model.get("files")
        _need(isinstance(files, list) and files, f"models[{i}].files must be a non-empty list")
        for j, entry in enumerate(files):
            what = f"models[{i}].files[{j}]"
            _need(isinstance(entry, dict), f"{what} must be an object")
            fmt = RUNTIME_FORMATS.get(entry.get("format")) if isinstance(entry.get("format"), str) else None
            _need(fmt is not None, f"{what}: format must be one of {', '.join(FORMATS)}")
            _need(entry.get("precision") in fmt.precisions,
                  f"{what}: precision of a {fmt.name} file must be one of {', '.join(fmt.precisions)}")
            shape = entry.get("input_shape")
            _need(isinstance(shape, list) and len(shape) == 4
                  and all(v is None or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE)
                          for v in shape), f"{what}: input_shape must be 4 sizes (null where dynamic)")
            _need(shape == fmt.input_shape(), f"{what}: input_shape of a {fmt.name} file must be {fmt.input_shape()}")
            _plain_relative(entry, what)
            # a file's name says its model, format and precision, so no label can be moved to another file
            name = f"models/{fmt.filename(i, entry['precision'])}"
            _need(entry.get("path") == name, f"{what}: a {fmt.name} {entry['precision']} file of model {i} is "
                                             f"{name!r}, not {entry.get('path')!r}")
            claim(name, what)
            if entry.get("update") is not None:
                _need(isinstance(entry["update"], dict), f"{what}.update must be an object")
                coded[name] = _check_update(root, entry, what, priors)
            else:
                _checked_file(root, entry, what)
    return Bundle(root, manifest, model_map, plan, coded)
