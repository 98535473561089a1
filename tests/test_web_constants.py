"""The web player's limits and names are the Python reader's: each constant bundle.js and plan.js declare equals
the one stdo declares (no browser needed: the JS files are read as text)."""

import json
import re
from pathlib import Path

import pytest

from stdo import bundle, plan, updates
from stdo.runtimes import FORMATS

WEB = Path(__file__).resolve().parents[1] / "android_demo" / "web" / "stdo"


def js_constants(name: str) -> dict[str, object]:
    """`const NAME = value;` of a JS file, for values that are numbers (with * ** <<), strings or string arrays."""
    found = {}
    for key, value in re.findall(r"^(?:export )?const ([A-Z_]+) = (.+?);", (WEB / name).read_text(), re.M):
        if re.fullmatch(r"[0-9 *<]+", value):
            found[key] = eval(value, {"__builtins__": {}})  # digits and * ** << only
        elif re.fullmatch(r"'[^']*'|\[('[^']*'(, )?)*\]", value):
            found[key] = json.loads(value.replace("'", '"'))
    return found


BUNDLE_JS, PLAN_JS = js_constants("bundle.js"), js_constants("plan.js")


@pytest.mark.parametrize("js, python", [
    (BUNDLE_JS["VERSION"], bundle.VERSION), (BUNDLE_JS["FORMAT"], bundle.FORMAT),
    (BUNDLE_JS["MAP_CODING"], bundle.MAP_CODING), (BUNDLE_JS["MAX_FILE_BYTES"], bundle.MAX_FILE_BYTES),
    (BUNDLE_JS["MAX_MANIFEST_BYTES"], bundle.MAX_MANIFEST_BYTES), (BUNDLE_JS["MAX_FRAMES"], bundle.MAX_FRAMES),
    (BUNDLE_JS["MAX_GRID"], bundle.MAX_GRID), (BUNDLE_JS["MAX_SIDE"], bundle.MAX_SIDE),
    (BUNDLE_JS["MAX_MODELS"], bundle.MAX_MODELS), (BUNDLE_JS["CODECS"], list(bundle.VIDEO_CODECS)),
    (BUNDLE_JS["MATRICES"], list(bundle.VIDEO_MATRICES)), (BUNDLE_JS["CODING"], updates.CODING),
    (BUNDLE_JS["MAX_OPS"], updates.MAX_OPS), (BUNDLE_JS["OP_BYTES"], updates.OP.size),
    (PLAN_JS["MAX_SHAPES"], plan.MAX_SHAPES), (PLAN_JS["MAX_MARGIN"], plan.MAX_MARGIN),
], ids=lambda v: str(v)[:24])
def test_each_web_constant_is_the_python_one(js, python):
    assert js == python


def test_the_web_formats_are_the_runtime_table():
    text = (WEB / "bundle.js").read_text()
    table = dict(re.findall(r"^  (\w+): \{ precisions: (\[[^\]]*\])", text, re.M))
    assert {name: json.loads(value.replace("'", '"')) for name, value in table.items()} == \
        {name: list(fmt.precisions) for name, fmt in FORMATS.items()}
