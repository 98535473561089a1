"""The Android shell (android_demo/app): its Java logic on the host JVM, and a signed APK with a real bundle
that passes apksigner verify, zipalign -c and aapt dump badging.

Needs a JDK, aapt, zipalign, apksigner and android.jar/dx (make android-deps); skipped without them,
except under CI=true, where a missing tool is a failure.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the APK build, then its page in headless Chromium (drive())

APP = Path(__file__).resolve().parents[1] / "android_demo" / "app"
TOOLS = ("javac", "java", "aapt", "zipalign", "apksigner", "keytool", "dpkg-deb")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
if MISSING and os.environ.get("CI") != "true":
    pytest.skip(f"Android build tools missing: {', '.join(MISSING)} (make android-deps)", allow_module_level=True)


def test_asset_routes_on_the_host_jvm(tmp_path):
    assert not MISSING, f"Android build tools missing under CI: {', '.join(MISSING)}"
    sources = [str(p) for p in (APP / "src/org/stdo/player/AssetRoutes.java", APP / "test/org/stdo/player/AssetRoutesTest.java")]
    subprocess.run(["javac", "-d", str(tmp_path), *sources], check=True)
    done = subprocess.run(["java", "-cp", str(tmp_path), "org.stdo.player.AssetRoutesTest"], capture_output=True, text=True)
    assert done.returncode == 0 and "all passed" in done.stdout, done.stdout + done.stderr


def test_a_signed_apk_with_a_bundle_builds_and_verifies(trained_run, tmp_path):
    from stdo.export.pipeline import ExportOptions, export

    assert not MISSING, f"Android build tools missing under CI: {', '.join(MISSING)}"
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    export(ExportOptions(run=run, format=("onnx", "tflite"), quantize=("int8",), calibration=16, verify_frames=1))
    build = tmp_path / "build"
    done = subprocess.run(["bash", str(APP / "build.sh"), str(run / "bundle")], capture_output=True, text=True,
                          env={**os.environ, "BUILD": str(build), "SDK": str(APP.parent / "build" / "sdk")})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    apk = build / "stdo-player.apk"
    assert subprocess.run(["apksigner", "verify", "--verbose", str(apk)], capture_output=True, text=True).stdout.count(
        "true") >= 2  # v2 and v3 (and v1) schemes verified
    assert subprocess.run(["zipalign", "-c", "4", str(apk)]).returncode == 0
    badging = subprocess.run(["aapt", "dump", "badging", str(apk)], capture_output=True, text=True).stdout
    assert "package: name='org.stdo.player'" in badging and "sdkVersion:'23'" in badging
    names = set(zipfile.ZipFile(apk).namelist())
    assert {"classes.dex", "assets/web/index.html", "assets/web/stdo/plan.js", "assets/bundle/manifest.json",
            "assets/bundle/modelmap.bin", "assets/web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm"} <= names
    assert not any(n.endswith(".pt") for n in names)  # the torch reference is not for the phone
    # one variant per APK by default, the bundle's recommended one: ONNX Runtime Web int8
    assert json.loads(zipfile.ZipFile(apk).read("assets/web/variant.json")) == {"backend": "onnxruntime",
                                                                               "precision": "int8"}
    models = {n.rsplit("/", 1)[1] for n in names if n.startswith("assets/bundle/models/")}
    assert models and all(".onnx" in n and "_int8" in n for n in models), models
    assert not any("litert_wasm" in n or n.endswith(".tflite") for n in names)
    assert apk.stat().st_size <= 15_000_000, apk.stat().st_size  # a user downloads one variant (58 MB carried all)
    litert = subprocess.run(["bash", str(APP / "build.sh"), str(run / "bundle")], capture_output=True, text=True,
                            env={**os.environ, "BUILD": str(tmp_path / "litert"), "VARIANT": "litert-int8",
                                 "SDK": str(APP.parent / "build" / "sdk")})
    assert litert.returncode == 0, litert.stderr[-2000:]
    litert_names = set(zipfile.ZipFile(tmp_path / "litert" / "stdo-player.apk").namelist())
    assert any("litert_wasm" in n for n in litert_names) and not any(n.endswith("ort-wasm-simd-threaded.wasm")
                                                                     for n in litert_names)
    assert {n for n in litert_names if n.startswith("assets/bundle/models/")} and all(
        ".tflite" in n and "_int8" in n for n in litert_names if n.startswith("assets/bundle/models/"))
    assert (tmp_path / "litert" / "stdo-player.apk").stat().st_size <= 15_000_000
    _plays_from_its_own_assets(apk, tmp_path / "assets")
    bad = subprocess.run(["bash", str(APP / "build.sh"), str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "BUILD": str(build), "SDK": str(APP.parent / "build" / "sdk")})
    assert bad.returncode == 2 and "is not a bundle" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def _plays_from_its_own_assets(apk: Path, folder: Path) -> None:
    """The APK's page, served from the APK's own assets (what the WebView serves), plays its bundle in headless
    Chromium with the one variant it carries and offers no other."""
    sys.path.insert(0, str(APP.parent / "web"))
    from stdo_web import drive, missing_tools, serve

    missing = missing_tools()
    if missing:
        assert os.environ.get("CI") != "true", f"web player tools missing under CI: {missing}"
        return
    zipfile.ZipFile(apk).extractall(folder, [n for n in zipfile.ZipFile(apk).namelist() if n.startswith("assets/")])
    assets = folder / "assets"
    with serve({"bundle": assets / "bundle"}, web=assets / "web", priors=assets / "priors") as base:
        out = drive(base + "web/index.html?test=1", [{"kind": "page", "url": "index.html?bundle=/bundle/",
                                                       "play": True}])
    played = out["results"][0]
    assert played["ok"] and "onnxruntime int8" in played["stats"] and played["stats"].startswith("frame "), played
