"""stdo-export as a library call: RUN/models/<method>/ -> a verified delivery bundle.

The bundle is built in a temp folder beside its destination and moved into place only
when every file is written and verified, so a failed export leaves no partial bundle
and an earlier bundle stays as it was.

bundle/
  manifest.json                  stdo.bundle (versioned; what the player reads)
  modelmap.bin                   the model map: model index of every patch, coded across time (absent for a
                                 single-model method); clients derive the inference plan from it (stdo.plan)
  lr.mp4                         the LR stream: RUN/frames/lr.mp4 byte for byte (the stream whose
                                 decoded frames the models were trained and evaluated on)
  models/model{i}.pt             folded fp32 state dict (the reference; the player's torch backend)
  models/model{i}[_{precision}].{onnx,tflite,mlpackage.zip} (.tflite: a signature per plan window shape)
  report.json, report.md         verification of every artifact on the clip

Variants: ONNX fp32 (+ int8), TFLite fp32 (+ fp16, int8), CoreML fp16 (+ int8); --quantize
adds the int8 and fp16 ones. Verification runs each variant the way a client would
(onnxruntime, ai-edge-litert; CoreML's decompressed weights in torch on Linux), executing
the bundle's plan over the verification frames, and compares with the fp32 torch models
executing the same plan and with HR.

This module is the stage (checks, the build, the update decisions); converting is stdo.export.convert's,
verifying stdo.export.verify's, the report's text stdo.export.report's.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from torch import nn

from stdo.errors import StdoError
from stdo import bundle as bundle_format
from stdo.export import gate
from stdo.export.convert import Variant, calibration_windows, carried_bases, code_update, variants
from stdo.export.margin import choose_margin
from stdo.export.report import format_report_md
from stdo.export.verify import target_of, verification_frames, verify
from stdo.toolchain import require
from stdo.fileio import save_torch, sha256_of, staged_dir, write_bytes, write_json
from stdo.infer import Runner
from stdo.options import AutoOr, CommaList, flag, parse_list
from stdo.plan import MAX_MARGIN, MAX_SHAPES, Plan, choose_shapes, make_plan
from stdo.locks import stage_lock, sweep_leftovers
from stdo.rundir import LR_STREAM, MODEL_MAP, REPORT, Run, model_file, open_run
from stdo.runtimes import EXPORT_FORMATS, QUANTIZE, open_runner
from stdo.runtimes import FORMATS as RUNTIME_FORMATS

from stdo.train.methods import METHODS, REGISTRY, load_trained
from stdo.progress import StageProgress

log = logging.getLogger(__name__)

UPDATES = ("auto", "on", "off")


@dataclass
class ExportOptions:
    """What stdo-export does: each field with its default, help and parser, once (stdo.options: the field is the
    command's flag of the same name). Errors name a field in backticks, as `plan_shapes`."""

    run: Path
    method: str = flag("stdo", "Which trained method of the RUN to export (RUN/models/METHOD).",
                       type=click.Choice(METHODS))
    format: tuple[str, ...] = flag(("onnx",), "Comma-separated: onnx, tflite, coreml.", type=CommaList(EXPORT_FORMATS))
    quantize: tuple[str, ...] = flag((), "Comma-separated extra precisions: int8 (all formats, calibrated on the "
                                     "clip), fp16 (tflite).", type=CommaList(QUANTIZE))
    out: Path | None = flag(None, "Bundle folder [default: RUN/bundle]. An earlier bundle there is replaced only "
                            "once the new one is complete and verified.", type=click.Path(path_type=Path))
    calibration: int = flag(64, "LR windows per model for int8 calibration, taken from the patches that model "
                            "serves.")
    verify_frames: int = flag(30, "Frames (evenly spaced) on which every artifact is verified; 0 = all.")
    plan_shapes: int = flag(3, "Window shapes of the inference plan (1..8): more shapes merge more patches per "
                            "run; a TFLite file, a fixed-shape runtime's, holds one signature per shape.")
    plan_margin: int | None = flag(None, "LR pixels of context around what each window keeps. auto: the least "
                                   "that leaves the models' output unchanged on a few frames (under 0.005 dB); the "
                                   "receptive radius is exact always.", type=AutoOr(int, "a number"),
                                   metavar="N|auto")
    strict: bool = flag(False, "Fail (exit 2, the earlier bundle kept) when a variant misses its quality target.")
    int8_max_loss: float = flag(0.3, "int8's quality target: its PSNR against HR at most this many dB below "
                                "fp32's.", metavar="DB")
    update: str = flag("auto", "Ship each model file as a coded update of the prior's file that clients carry (a "
                       "few KB where training changed little): auto when the models started from a carried prior "
                       "(stdo-train --init prior), on to require it, off for whole files.", type=click.Choice(UPDATES))
    priors: Path | None = flag(None, "The priors clients carry (priors.json and their files) [default: stdo's "
                               "own].", type=click.Path(path_type=Path, file_okay=False))
    db_per_kb: float = flag(0.0, "What a model's update must buy to ship: dB of the clip's PSNR over the prior "
                            "alone per KiB of update (stdo-deliver gives the LR stream's own slope at its CRF); 0: "
                            "any gain. A model whose update does not pay is served by the prior clients carry.",
                            metavar="DB")
    ship_all: bool = flag(False, "Ship every model's update, whether or not it pays for its bytes.")
    threads: int | None = flag(None, "Threads of onnxruntime / LiteRT during verification.",
                               type=click.IntRange(min=1))
    recommended: tuple[str, str] | None = None  # (format, precision): the variant the bundle's headline counts and
    # clients play by default; None: the first exported of stdo.bundle.VARIANT_PREFERENCE


def _check(o: ExportOptions) -> tuple[Run, Path]:
    """Everything that can be refused before any work: returns (the RUN, opened; the bundle path)."""
    if o.method not in METHODS:
        raise StdoError(f"unknown method {o.method!r}: use one of {', '.join(METHODS)}")
    if not o.format:
        raise StdoError("`format` is empty: give one or more of " + ",".join(EXPORT_FORMATS))
    if o.recommended is not None and o.recommended[0] != "torch" and \
            tuple(o.recommended) not in {(v.format, v.precision) for v in variants(tuple(o.format), tuple(o.quantize))}:
        raise StdoError(f"`recommended` {' '.join(o.recommended)} is not exported: add it to `format` and `quantize`")
    parse_list(list(o.format), EXPORT_FORMATS, "`format`")
    parse_list(list(o.quantize), QUANTIZE, "`quantize`")
    if not 1 <= o.plan_shapes <= MAX_SHAPES:
        raise StdoError(f"`plan_shapes` {o.plan_shapes} is outside 1..{MAX_SHAPES}")
    if o.plan_margin is not None and not 0 <= o.plan_margin <= MAX_MARGIN:
        raise StdoError(f"`plan_margin` {o.plan_margin} is outside 0..{MAX_MARGIN}: give a margin in LR pixels, or auto")
    if o.update not in UPDATES:
        raise StdoError(f"`update` {o.update!r} is unknown: use one of {', '.join(UPDATES)}")
    if o.calibration <= 0 or o.verify_frames < 0:
        raise StdoError("`calibration` must be above 0 and `verify_frames` at least 0 (0 = all frames)")
    run = open_run(o.run, missing="run stdo-cluster and stdo-train first")
    if not (run.path / LR_STREAM).is_file():
        raise StdoError(f"{run} has no {LR_STREAM} (the LR stream): rerun stdo-cluster with `overwrite=True`")
    models = run.trained(o.method)
    if not (models / REPORT).is_file() or not (models / MODEL_MAP).is_file():
        raise StdoError(f"{models} holds no finished training: run stdo-train on {run} with `method={o.method!r}` first")
    out = Path(o.out) if o.out else run.bundle_dir
    if out.exists() and not (out / bundle_format.MANIFEST).is_file():
        raise StdoError(f"{out} exists and is not a bundle: give another `out`, or remove it")
    for f in o.format:
        for module in RUNTIME_FORMATS[f].converters:
            require(module)
    return run, out


def check_provenance(run: Run, method: str, report: dict) -> None:
    """Refuse models trained on another clustering of the RUN, or model files of different trainings."""
    folder = run.trained(method)
    if report.get("run_id") != run.info.get("run_id"):
        raise StdoError(f"{folder} was trained on an earlier clustering of {run}: retrain it "
                        f"(stdo-train on {run} with `method={method!r}` `restart=True`)")
    for name, digest in (report.get("model_sha256") or {}).items():
        if not (folder / name).is_file() or sha256_of(folder / name) != digest:
            raise StdoError(f"{folder / name} is not the model report.json describes (a retraining stopped half-way?): "
                            f"rerun stdo-train on {run} with `method={method!r}` to finish it")


@dataclass
class Trained:
    """The models a bundle ships, the model map (which serves each patch) and the training's report; `as_prior`: the
    models that are the carried prior itself, served as clients carry it."""

    models: list[nn.Module]
    model_map: np.ndarray
    report: dict
    as_prior: frozenset[int] = frozenset()


def _trained(run: Run, method: str) -> Trained:
    models, model_map, report = load_trained(run.trained(method))
    check_provenance(run, method, report)
    if REGISTRY[method].video:
        raise StdoError(f"{method} is a server-side video model, not a phone bundle's per-patch WDSR: run it with "
                        f"stdo-upscale on {run} with `method={method!r}`")
    if any(m.config.frames > 1 for m in models):
        raise StdoError(f"{method} reads {models[0].config.frames} frames at once: a phone bundle holds single-frame "
                        "models; export wdsr-large or an on-device method")
    if model_map.shape != (len(run.lr), run.grid.rows, run.grid.cols):
        raise StdoError(f"{run.trained(method)} does not match the RUN's frames: rerun stdo-train with `restart=True`")
    return Trained(models, model_map, report)


def export(o: ExportOptions, progress: StageProgress = None) -> dict:
    """Export a trained method of a RUN into a verified bundle; returns the report."""
    run, out = _check(o)
    with stage_lock(run.path, f"RUN {run}", shared=True), \
            stage_lock(out.parent, f"bundle {out}", name=f".stdo-{out.name}.lock"):
        sweep_leftovers(out.parent, recursive=False, prefix=f".{out.name}.")  # of a killed export to this bundle
        return _export(o, open_run(run.path), out, progress)  # read again, now that no clustering can run


def _export(o: ExportOptions, run: Run, out: Path, progress: StageProgress) -> dict:
    trained = _trained(run, o.method)
    wanted = variants(tuple(o.format), tuple(o.quantize))
    t0 = time.perf_counter()
    deciding = _deciding(o, trained)
    # deciding, the variant the headline counts is built first, alone: its bytes are what each update is weighed by
    first = [v for v in wanted if (v.format, v.precision) == _counted_variant(o, wanted)] if deciding else wanted
    with staged_dir(out) as tmp:
        report, plan, files = _build(o, tmp, run, trained, first, progress)
        decisions, prior = _decisions(o, run, plan, trained, _counted_bytes(report, files)) if deciding else ([], None)
        pays = all(d.pays for d in decisions)
        if not pays:  # the models that do not pay merged: served by the prior
            model_map, kept, has_prior = gate.merged(trained.model_map, decisions)
            trained = Trained([trained.models[i] for i in kept] + ([prior] if has_prior else []), model_map,
                              trained.report, as_prior=frozenset({len(kept)}) if has_prior else frozenset())
        if not pays or first != wanted:  # built (again) with every variant
            for child in list(tmp.iterdir()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            report, _, _ = _build(o, tmp, run, trained, wanted, progress)
        if decisions:
            report["updates"] = {"db_per_kb": o.db_per_kb, "models": [d.as_dict() for d in decisions]}
        report["seconds"] = time.perf_counter() - t0
        write_json(tmp / "report.json", report)
        write_bytes(tmp / "report.md", format_report_md(report).encode())
        bundle_format.read_bundle(tmp, o.priors).rebuild_all()  # what a client checks, before anyone sees it
    report["bundle"] = str(out)
    return report


def _deciding(o: ExportOptions, trained: Trained) -> bool:
    """Whether each model's update is weighed against its bytes: not with `ship_all`, nor for models that are not
    updates of a carried prior."""
    bases = carried_bases(o.update, o.priors, trained.report)
    return not o.ship_all and ("torch", "fp32") in bases and REGISTRY[o.method].trains


def _counted_variant(o: ExportOptions, wanted: list[Variant]) -> tuple[str, str] | None:
    """The (format, precision) the bundle's headline counts, as its manifest records it: `recommended`, or the first
    of `wanted` in the bundle's order of preference."""
    exported = {(v.format, v.precision) for v in wanted}
    return tuple(o.recommended) if o.recommended else next((v for v in bundle_format.VARIANT_PREFERENCE
                                                            if v in exported), None)


def _decisions(o: ExportOptions, run: Run, plan: Plan, trained: Trained,
               sizes: list[int]) -> tuple[list[gate.Decision], nn.Module | None]:
    """(whether each model's update of `sizes` bytes pays, the carried prior as a module) (stdo.export.gate)."""
    bases = carried_bases(o.update, o.priors, trained.report)
    prior = gate.prior_model(trained.models[0], bases[("torch", "fp32")]["path"])
    frames = verification_frames(len(run.lr), o.verify_frames)
    with_models, with_prior = gate.squared_errors(run, plan, trained.model_map, trained.models, prior, frames)
    return gate.decide(with_models, with_prior, trained.model_map, sizes, o.db_per_kb), prior


def _counted_bytes(report: dict, files: list[list[dict]]) -> list[int]:
    """Each model's download in the variant the bundle's headline counts (its update, or its whole file)."""
    counted = (report["recommended"]["format"], report["recommended"]["precision"])
    entries = [next(e for e in model_files if (e["format"], e["precision"]) == counted) for model_files in files]
    return [e["update"]["bytes"] if "update" in e else e["bytes"] for e in entries]


def _build(o: ExportOptions, root: Path, run: Run, trained: Trained, wanted: list[Variant],
           progress: StageProgress) -> tuple[dict, Plan, list]:
    """Convert, code and verify the models into `root`; (report, plan, each model's file entries)."""
    info, lr, grid, scale = run.info, run.lr, run.grid, run.scale
    models, model_map, train_report = trained.models, trained.model_map, trained.report
    num_models = len(models)
    joint = num_models == 1
    bases = carried_bases(o.update, o.priors, train_report)
    (root / "models").mkdir()
    files: list[list[dict]] = [[] for _ in models]
    runners: dict[str, list[Runner]] = {}
    bytes_by_variant: dict[str, int] = {}

    def shapes_for(margin: int) -> tuple[tuple[int, int], ...]:
        return choose_shapes(model_map, grid, margin, o.plan_shapes)

    if o.plan_margin is None:  # the least context that leaves the shipped plan's output as it is, on a few frames
        margin_check = choose_margin(run, model_map, models, verification_frames(len(lr), 8), shapes_for)
        margin = margin_check["margin"]
    else:
        margin, margin_check = o.plan_margin, None
    plan = make_plan(model_map, grid, margin, shapes_for(margin))
    if progress:
        progress("plan", 1, 1)

    calibrations: dict[tuple[int, tuple[int, int]], list[np.ndarray]] = {}  # ONNX and TFLite int8 share them

    def calibration(variant: Variant, i: int, shapes: tuple[tuple[int, int], ...]) -> list[np.ndarray] | None:
        """Model i's calibration windows: of the first plan shape (ONNX traces there), or of every shape where the
        format has a signature per shape (one set of activation ranges serves them all)."""
        if variant.precision != "int8" or not RUNTIME_FORMATS[variant.format].calibrated:
            return None
        traced = shapes if variant.signatures else shapes[:1]
        for shape in traced:
            if (i, shape) not in calibrations:
                calibrations[i, shape] = calibration_windows(lr, grid, model_map, i, o.calibration, shape)
        return [b for shape in traced for b in calibrations[i, shape]]

    for i, model in enumerate(models):  # the fp32 reference, for the player's torch backend
        path = root / "models" / model_file(i)
        save_torch(path, model.state_dict())
        files[i].append(bundle_format.file_entry(root, path, format="torch", precision="fp32",
                                                 input_shape=[None, 3, None, None]))
        files[i][-1].update(code_update(root, path, bases.get(("torch", "fp32"), {}).get("path")))
    for variant in wanted:
        runners[variant.label] = []
        bytes_by_variant[variant.label] = 0
        for i, model in enumerate(models):
            carried = bases.get((variant.format, variant.precision), {})
            path = root / "models" / variant.filename(i)
            served_as_is = bool(carried) and (not REGISTRY[o.method].trains or i in trained.as_prior)  # the prior
            try:
                if served_as_is and not variant.signatures:
                    # the very file clients carry, so its update is next to nothing
                    shutil.copyfile(carried["path"], path)
                elif served_as_is and "activation_quantization" in carried:
                    # converted for the plan's shapes with the carried file's own numbers: its update is the shapes
                    RUNTIME_FORMATS[variant.format].convert(model, path, plan.shapes, variant.precision,
                                                            carried["activation_quantization"])
                else:
                    RUNTIME_FORMATS[variant.format].convert(model, path, plan.shapes, variant.precision,
                                                            calibration(variant, i, plan.shapes))
            except StdoError:
                raise
            except Exception as e:  # noqa: BLE001 - a converter's own failure, reported in one line
                raise StdoError(f"{variant.label} conversion of model {i} failed ({e.__class__.__name__}: "
                                f"{str(e).splitlines()[0][:200] if str(e) else ''}); run with -v for details"
                                ) from None
            entry = bundle_format.file_entry(root, path, format=variant.format, precision=variant.precision,
                                             input_shape=RUNTIME_FORMATS[variant.format].input_shape())
            entry.update(code_update(root, path, carried.get("path")))
            files[i].append(entry)
            bytes_by_variant[variant.label] += entry["update"]["bytes"] if "update" in entry else entry["bytes"]
            runners[variant.label].append(open_runner(variant.format, path, o.threads, reference=model))
            if progress:
                progress("convert", 1, len(wanted) * num_models)

    frames = verification_frames(len(lr), o.verify_frames)
    checks = verify(run, plan, models, runners, frames, progress)
    for entry in (e for model_files in files for e in model_files if "update" in e):
        (root / entry["path"]).unlink()  # verified; clients rebuild it from the prior's file and the update
    video_path = root / "lr.mp4"
    shutil.copyfile(run.path / LR_STREAM, video_path)  # the bytes the models were trained on; never re-encoded
    fps = info.fps
    if progress:
        progress("video", 1, 1)

    manifest = bundle_format.write_manifest(root, bundle_format.BundleContents(
        run_id=info.get("run_id"), method=o.method, joint=joint, scale=scale, grid=grid, frames=int(len(lr)),
        fps=fps, model_map=None if joint else model_map, plan=plan, video=video_path, model=train_report.get("model"),
        receptive_radius=max(m.receptive_radius for m in models), files=files,
        prior=train_report.get("prior") if bases else None,  # the prior whose carried files the updates code against
        recommended=_counted_variant(o, wanted)))

    rows = []
    for variant in wanted:
        figures = checks["variants"][variant.label]
        rows.append({"format": variant.format, "precision": variant.precision, "bytes": bytes_by_variant[variant.label],
                     **figures, "target": target_of(variant, figures, o.int8_max_loss), "checked_by": RUNTIME_FORMATS[variant.format].checked_by})
    missed = [f"{r['format']} {r['precision']} ({r['target']})" for r in rows if r["target"] not in ("ok", "-")]
    if o.strict and missed:
        raise StdoError(f"`strict`: {', '.join(missed)} misses its target; no bundle written, the earlier one is kept")
    report = {
        "format": 1, "tool": manifest["tool"], "created": manifest["created"], "method": o.method,
        "scale": scale, "models": num_models, "window": list(grid.window_shape),
        "verify_frames": len(frames), "torch_fp32_psnr_hr": checks["torch_fp32_psnr_hr"],
        "plan": {**plan.stats(grid), "margin_check": margin_check},
        "train_psnr_video": train_report.get("psnr_video"),
        "bicubic_psnr_video": (train_report.get("bicubic") or {}).get("psnr_video"),
        "video": {k: manifest["video"][k] for k in bundle_format.VIDEO_FIELDS + ("bytes", "sha256")},
        "artifacts": rows, "clients": bundle_format.bytes_per_variant(manifest),
        "recommended": manifest.get("recommended"),
    }
    return report, plan, files
