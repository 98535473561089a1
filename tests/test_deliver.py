"""stdo-deliver: the operating point of best played PSNR within a byte budget, every point measured."""

import json
from pathlib import Path

import numpy as np
import pytest

from stdo.deliver.cli import deliver_command
from stdo.deliver.pipeline import Budget
from stdo.errors import StdoError
from conftest import tree

pytestmark = pytest.mark.slow  # whole deliveries: several trainings each

TINY = ["--scale", "4", "--grid", "2x2", "--chunks", "2", "--frames", "4", "--crop", "160x96+240+96",
        "--steps", "20", "--crf", "23,35", "--no-fill-budget", "--ship-all", "-q"]  # every update, paying or not


@pytest.fixture(scope="module")
def delivered(bikes, tmp_path_factory):
    """A delivery with a budget every point fits: the best PSNR of two CRFs and three methods (the prior alone one
    of them) is kept (the cheapest of those within --tie of it)."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("deliver") / "clip"
    result = CliRunner().invoke(deliver_command, [str(bikes), str(out), "--budget", "10MB", "--method", "stdo,jstdo,prior",
                                                  "--format", "onnx,tflite", *TINY])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "points.json").read_text()), result.output


def test_every_point_is_measured_and_the_best_within_budget_kept(delivered):
    from stdo.play.pipeline import PlayOptions, play

    out, report, output = delivered
    assert [(p["scale"], p["crf"], p["method"]) for p in report["points"]] == [
        (4, c, m) for c in (23, 35) for m in ("bicubic", "jstdo", "prior", "stdo")]  # the stream alone a point too
    by = {(p["crf"], p["method"]): p for p in report["points"]}
    assert by[35, "stdo"]["bytes"]["video"] < by[23, "stdo"]["bytes"]["video"]  # a higher CRF ships fewer video bytes
    assert by[23, "jstdo"]["bytes"]["model_map"] == by[23, "prior"]["bytes"]["model_map"] == 0 < \
        by[23, "stdo"]["bytes"]["model_map"]  # one joint model
    # the prior alone: its bundle is the carried prior coded against itself, nothing trained
    assert by[23, "prior"]["bytes"]["models"] < by[23, "jstdo"]["bytes"]["models"]
    assert all(p["why"] and isinstance(p["pays"], bool) for p in report["points"] if p["method"] != "bicubic")
    assert all(by[c, "bicubic"]["psnr"] == pytest.approx(by[c, "stdo"]["bicubic_psnr"], abs=1e-6)  # bicubic played
               and by[c, "bicubic"]["total"] == by[c, "stdo"]["video"] for c in (23, 35))
    assert all(p["total"] == sum(v for k, v in p["bytes"].items() if k != "total") for p in report["points"])
    kept, best = report["chosen"], max(p["psnr"] for p in report["points"])
    ties = [p for p in report["points"] if p["psnr"] >= best - report["tie_db"]]  # all fit 10 MB
    assert kept == min(ties, key=lambda p: p["total"]) and kept["total"] <= report["budget"] == 10_000_000
    played = play(PlayOptions(bundle=out / "bundle", backend="onnxruntime", precision="int8", hr=out / "frames/hr.npy"))
    assert played["delivered"]["total"] == kept["total"]  # OUT holds the point reported, exported whole
    assert played["psnr"]["model"] == pytest.approx(kept["psnr"], abs=1e-6)
    # the carried prior alone on the same decoded stream, the same variant: what the update is worth
    assert played["psnr"]["prior"] == pytest.approx(kept["prior_psnr"], abs=1e-6)
    assert f"{kept['psnr'] - kept['prior_psnr']:+.2f} dB over the prior alone" in output
    manifest = json.loads((out / "bundle/manifest.json").read_text())
    assert manifest["method"] == kept["method"] and {f["format"] for f in manifest["models"][0]["files"]} >= {"onnx",
                                                                                                          "tflite"}
    assert manifest["recommended"] == {"format": "onnx", "precision": "int8"}  # what the points counted
    # what each client of the kept bundle downloads: the played variant's is the total the points counted
    assert report["clients"]["onnx int8"]["total"] == kept["total"] and "tflite int8" in report["clients"]
    assert "clients  onnx int8 (web / onnxruntime)" in output and "per client" in (out / "points.md").read_text()
    assert not list(out.glob("bundle-*"))  # the candidates' measurement bundles are gone
    assert "<- kept" in output and (out / "points.md").is_file() and kept["why"].startswith("kept")


def test_a_tighter_budget_keeps_the_point_that_fits(delivered, bikes, tmp_path, cli):
    _, report, _ = delivered
    by = {(p["crf"], p["method"]): p for p in report["points"]}
    low, high = by[23, "stdo"], by[35, "stdo"]
    budget = (low["total"] + high["total"]) // 2  # the costlier point is over it
    assert high["total"] < budget < low["total"]
    code, out, err, _ = cli(deliver_command, [bikes, tmp_path / "clip", "--budget", str(budget), "--method", "stdo",
                                              *TINY])
    assert code == 0, err
    kept = json.loads((tmp_path / "clip/points.json").read_text())
    fitting = [p for p in kept["points"] if p["within_budget"]]
    assert kept["chosen"]["total"] <= budget and kept["chosen"]["psnr"] == max(p["psnr"] for p in fitting)
    assert (kept["chosen"]["crf"], kept["chosen"]["method"]) != (23, "stdo")  # over the budget
    assert [p["within_budget"] for p in kept["points"] if p["method"] == "stdo"] == [False, True]


def test_each_update_is_priced_at_the_streams_own_slope(bikes, tmp_path, cli):
    """Without --ship-all, a trained point's updates ship where they buy more than the LR stream's own slope at its
    CRF (the prior alone played at each CRF, measured first); the rest are served by the prior, and a point whose
    updates all fail is the prior alone (no model map)."""
    from stdo.deliver.pipeline import stream_slope

    tiny = [a for a in TINY if a != "--ship-all"]
    code, _, err, _ = cli(deliver_command, [bikes, tmp_path / "clip", "--budget", "10MB", "--method", "stdo,prior",
                                            *tiny])
    assert code == 0, err
    points = json.loads((tmp_path / "clip/points.json").read_text())["points"]
    for p in (p for p in points if p["method"] == "stdo"):
        slope = stream_slope(points, p["crf"], 4)
        assert slope is not None and p["db_per_kb"] == pytest.approx(slope * 1024)
        decided = p["updates"]
        assert [d["pays"] for d in decided] == [d["gain_db"] > 0 and d["gain_db"] >= p["db_per_kb"] * d["update_bytes"]
                                                / 1024 for d in decided]
        assert (p["bytes"]["model_map"] == 0) == (not any(d["pays"] for d in decided))


def _clip(bikes, tmp_path, start: int, count: int, still: bool) -> Path:
    """bikes.mp4's frames from `start` (640x272), or its first frame held still, as a lossless source."""
    from stdo.stream import StreamOptions, encode_stream
    from stdo.video import read_video

    frames, _ = read_video(bikes, start=start, count=count)
    if still:
        frames = np.repeat(frames[:1], count, 0)
    path = tmp_path / ("still.mp4" if still else "moving.mp4")
    encode_stream(path, iter(frames), 25.0, StreamOptions(lossless=True))
    return path


RUNGS = ["--scale", "4,1", "--grid", "2x2", "--chunks", "2", "--steps", "20", "--crf", "27,35", "--method", "prior",
         "-q"]


def test_the_hr_stream_is_kept_where_no_reduced_scale_plays_better(bikes, tmp_path, cli):
    """A still scene: the HR codec codes every frame after the first in a few bytes, so the HR stream itself, at
    the best CRF that fits, beats every x4 point; OUT/bundle is that stream alone, and plays as HR streaming would."""
    from stdo.bundle import read_bundle
    from stdo.play.pipeline import PlayOptions, play

    source = _clip(bikes, tmp_path, 20, 8, still=True)
    code, output, err, _ = cli(deliver_command, [source, tmp_path / "out", "--budget", "6KB", *RUNGS])
    assert code == 0, err
    report = json.loads((tmp_path / "out/points.json").read_text())
    kept = report["chosen"]
    assert (kept["scale"], kept["method"]) == (1, "bicubic") and kept["total"] <= 6000
    assert kept["psnr"] > max(p["psnr"] for p in report["points"] if p["scale"] == 4 and "psnr" in p) + 3
    assert "kept the HR stream itself" in output and " HR " in output
    bundle = read_bundle(tmp_path / "out/bundle")
    assert bundle.plain and bundle.scale == 1 and bundle.video["bytes"] == kept["total"]
    played = play(PlayOptions(bundle=tmp_path / "out/bundle", hr=tmp_path / "out/frames/hr.npy", shave=4))
    assert played["psnr"]["model"] == pytest.approx(kept["psnr"], abs=1e-6) and played["delivered"]["models"] == 0


def test_a_detailed_moving_scene_keeps_a_reduced_scale_within_a_tight_budget(bikes, tmp_path, cli):
    """Where the bikes ride past: within 4 KB the HR stream needs its highest CRF, and x4 plays better."""
    source = _clip(bikes, tmp_path, 150, 12, still=False)
    code, output, err, _ = cli(deliver_command, [source, tmp_path / "out", "--budget", "4KB", *RUNGS])
    assert code == 0, err
    report = json.loads((tmp_path / "out/points.json").read_text())
    kept, hr = report["chosen"], next(p for p in report["points"] if p["scale"] == 1)
    assert kept["scale"] == 4 and kept["psnr"] > hr["psnr"] and hr["within_budget"] and hr["crf"] == 51
    assert "why" in hr and "against the kept point" in hr["why"]
    # x4 at the CRF that fills the budget, played by the prior alone and by bicubic (nothing to train): the 4 KB
    # the CRFs given leave unspent buy quality on the stream
    filled = {p["method"]: p for p in report["points"] if p.get("fills")}
    assert set(filled) == {"bicubic", "prior"} and filled["prior"]["crf"] < 35 and filled["prior"]["within_budget"]
    given = next(p for p in report["points"] if (p["scale"], p["crf"], p["method"]) == (4, 35, "prior"))
    assert given["total"] < filled["prior"]["total"] <= 4000 and filled["prior"]["psnr"] > given["psnr"]
    assert f"x4 CRF {filled['prior']['crf']}: the lowest CRF whose stream fits the budget" in output
    assert "(fills the budget)" in (tmp_path / "out/points.md").read_text()
    assert (tmp_path / "out/run.json").is_file() and (tmp_path / "out/bundle/manifest.json").is_file()


def test_a_budget_below_the_cheapest_stream_is_refused_and_nothing_written(bikes, tmp_path, cli):
    code, _, err, _ = cli(deliver_command, [bikes, tmp_path / "clip", "--budget", "1KB", *TINY])
    assert code == 2 and "below the smallest bundle" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and tree(tmp_path) == {}  # no OUT, no temp folder left beside it
    assert list(tmp_path.iterdir()) == []  # nor its lock file


@pytest.mark.parametrize("args, message", [(["--steps", "0"], "--steps 0"), (["--budget", "1B"], "--budget"),
                                           (["--hold", "2"], "--hold 2 is not an odd number of frames")])
def test_refused_input_leaves_no_lock_file_beside_out(bikes, tmp_path, cli, args, message):
    code, _, err, _ = cli(deliver_command, [bikes, tmp_path / "clip", "--budget", "80KB", *TINY, *args])
    assert code == 2 and list(tmp_path.iterdir()) == [] and message in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "notes.txt").write_text("not a video")
    code, _, err, _ = cli(deliver_command, [tmp_path / "notes.txt", tmp_path / "clip", "--budget", "80KB", *TINY])
    assert code == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], err


def test_a_killed_deliverys_temp_folder_is_swept_by_the_next(bikes, tmp_path, cli):
    left = tmp_path / ".clip.abc123.tmp"  # what a killed stdo-deliver to tmp_path/clip leaves
    (left / "crf35").mkdir(parents=True)
    (left / "crf35/run.json").write_text("{}")
    code, _, err, _ = cli(deliver_command, [bikes, tmp_path / "clip", "--budget", "1KB", *TINY])
    assert code == 2 and not left.exists()


def test_an_earlier_delivery_is_kept_unless_overwrite(delivered, bikes, cli):
    out, report, _ = delivered
    before = (out / "points.json").read_bytes()
    code, _, err, _ = cli(deliver_command, [bikes, out, "--budget", "10MB", *TINY])
    assert code == 2 and "--overwrite" in err and (out / "points.json").read_bytes() == before
    code, _, err, _ = cli(deliver_command, [bikes, out, "--budget", "10MB", "--method", "vinr", *TINY])
    assert code == 2 and "--method" in err and (out / "points.json").read_bytes() == before


def _point(crf: int, method: str, video: int, side: int, psnr: float, prior: float) -> dict:
    return {"crf": crf, "method": method, "video": video, "total": video + side, "psnr": psnr, "prior_psnr": prior,
            "bytes": {"video": video, "models": side, "model_map": 0}, "within_budget": True}


def test_an_update_ships_only_where_it_pays_for_its_bytes():
    from stdo.deliver.pipeline import choose_point, rate_decisions

    # the stream: 40,000 B more (CRF 31 -> 27) buy 1.0 dB with the prior alone: 0.025 dB per KB
    def points(gain_27: float) -> list[dict]:
        return [_point(31, "prior", 40_000, 300, 30.0, 30.0), _point(27, "prior", 80_000, 300, 31.0, 31.0),
                _point(31, "jstdo", 40_000, 8_000, 30.1, 30.0), _point(27, "jstdo", 80_000, 8_000, 31.0 + gain_27, 31.0)]

    cheap = points(0.03)  # 8 KB for 0.03 dB: inside the tie, and less than the stream buys with 8 KB (0.2 dB)
    rate_decisions(cheap)
    assert [p["pays"] for p in cheap] == [False, False, False, False]
    kept = choose_point(cheap, 0.05)
    assert (kept["crf"], kept["method"]) == (27, "prior") and "tie with the kept point" in cheap[3]["why"]
    dear = points(0.6)  # 8 KB for 0.6 dB: three times what the stream buys with them
    rate_decisions(dear)
    assert dear[3]["pays"] and dear[3]["over_prior_db"] == pytest.approx(0.6) and dear[3]["side_bytes"] == 8_000
    assert dear[3]["stream_db_per_byte"] == pytest.approx(1.0 / 40_000)
    kept = choose_point(dear, 0.05)
    assert (kept["crf"], kept["method"]) == (27, "jstdo") and kept["why"].startswith("kept")
    assert "-0.600 dB against the kept point" in dear[1]["why"]


def test_budgets_read_as_bytes_or_bitrates():
    def read(text: str) -> tuple:
        return Budget.parse(text).bytes, Budget.parse(text).kbps

    assert read("120000") == (120000, None)
    assert read("120KB") == (120000, None) and read("1.5MB") == (1500000, None)
    assert read("2KiB") == (2048, None)
    assert read("400kbit/s") == (None, 400.0) and read("0.5Mbps") == (None, 500.0)
    assert Budget.parse("400kbit/s").over(10.0) == 500_000 and str(Budget.parse(" 80KB ")) == "80KB"
    with pytest.raises(StdoError, match="give bytes"):
        Budget.parse("lots")
    with pytest.raises(StdoError, match="above 0"):
        Budget.parse("0KB")  # refused where it is read, not first in the delivery


def test_every_client_counts_each_point_at_its_largest_download(bikes, tmp_path, cli):
    """--every-client: the budget holds for the web, Android and iOS clients alike, so a point counts as its largest
    download (a LiteRT client gets the prior's file at the stream's frame size: more than ONNX's 170 bytes)."""
    code, output, err, _ = cli(deliver_command, [bikes, tmp_path / "out", "--budget", "12KB", "--scale", "4", "--grid",
                                                 "2x2", "--chunks", "2", "--frames", "8", "--crop", "160x96+240+96",
                                                 "--crf", "27", "--method", "prior", "--format", "onnx,tflite",
                                                 "--every-client", "--no-fill-budget", "-q"])
    assert code == 0, err
    report = json.loads((tmp_path / "out/points.json").read_text())
    prior, clients = next(p for p in report["points"] if p["method"] == "prior"), report["clients"]
    assert prior["counted"] == "tflite int8" and report["chosen"]["method"] == "prior"
    assert prior["total"] == clients["tflite int8"]["total"] > clients["onnx int8"]["total"]
    assert "largest client download" in output and "(tflite int8)" in (tmp_path / "out/points.md").read_text()
