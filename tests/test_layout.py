"""Who owns what: the formats several stages share import no stage, and the format table drives dispatch."""

import ast
import re
from pathlib import Path

import click
import pytest

import stdo
from stdo.runtimes import EXPORT_FORMATS, FORMATS, resolve

ROOT = Path(stdo.__file__).parent
STAGES = ("stdo.cluster", "stdo.train", "stdo.export", "stdo.deliver", "stdo.fleet", "stdo.upscale", "stdo.views")
# what a client runs: the player, the bundle and plan readers, the update rebuild, the runtimes and the tiling
CLIENT = [*sorted((ROOT / "play").glob("*.py")), *sorted((ROOT / "runtimes").glob("*.py")),
          *(ROOT / f for f in ("bundle.py", "plan.py", "updates.py", "infer.py", "scores.py", "priors/__init__.py"))]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CLIENT, ids=lambda p: str(p.relative_to(ROOT)))
def test_client_modules_import_no_stage(path):
    stages = sorted(m for m in imported_modules(path) if m.startswith(STAGES))
    assert not stages, f"{path.relative_to(ROOT)} imports {stages}"


def test_the_format_table_names_a_runner_for_every_format_and_a_converter_for_each_export_format():
    for name, fmt in FORMATS.items():
        assert fmt.name == name and fmt.runner.startswith("stdo.runtimes.")
        assert callable(resolve(fmt.runner))
    assert EXPORT_FORMATS == ("onnx", "tflite", "coreml")
    for name in EXPORT_FORMATS:
        assert FORMATS[name].converter.startswith("stdo.export.") and callable(resolve(FORMATS[name].converter))


def test_the_method_registry_is_what_the_commands_offer_and_refuse():
    from stdo.export.cli import export_command
    from stdo.train.cli import train_command
    from stdo.train.methods import ON_DEVICE_METHODS, REGISTRY, Method, register_method
    from stdo.upscale.cli import upscale_command

    def choices(command) -> tuple:
        return tuple(next(p for p in command.params if p.name == "method").type.choices)

    assert choices(train_command) == choices(export_command) == choices(upscale_command) == tuple(REGISTRY)
    assert ON_DEVICE_METHODS == ("stdo", "jstdo", "awdnn", "nas", "cafm", "prior")
    assert {n for n, m in REGISTRY.items() if m.video} == {"brvsr", "vinr"}
    assert {n for n, m in REGISTRY.items() if m.joint_start is not None} == {"stdo", "cafm"}
    with pytest.raises(ValueError, match="registered twice"):
        register_method(Method("stdo", REGISTRY["stdo"].build, on_device=True))


@pytest.mark.parametrize("family", ["method", "codec", "format"])
def test_no_code_asks_a_method_a_codec_or_a_format_its_name_again(family):
    """What sets a method, a codec or a file format apart is data on its table entry: no `x.method == "nas"`,
    `codec != "h264"` or `format == "coreml"` (nor `in (...)`) anywhere in the package."""
    from stdo.stream import CODECS
    from stdo.train.methods import REGISTRY

    table = {"method": REGISTRY, "codec": CODECS, "format": FORMATS}[family]

    def names(node: ast.AST) -> set[str]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return {i.value for i in items if isinstance(i, ast.Constant) and i.value in table}

    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                     for op in node.ops):
                sides = [node.left, *node.comparators]
                if not any(family in ast.unparse(side) for side in sides):
                    continue  # "prior" is also an `init` and a key of scores: only a name of the family is asked
                hit = set().union(*(names(side) for side in sides))
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {sorted(hit)}"] if hit else []
    assert not found, found


def test_each_renamed_flag_is_its_commands_and_the_old_spelling_warns(cli, tmp_path):
    from stdo.clitools import FLAG_VOCABULARY
    from stdo.play.cli import play_command
    from stdo.train.cli import train_command
    from stdo.train.general_cli import general_command
    from stdo.upscale.cli import upscale_command
    from stdo.cluster.cli import cluster_command
    from stdo.fleet.cli import fleet_command
    from stdo.views.cli import order_command, sfm_command
    from stdo.views.cli import upscale_command as views_upscale_command

    commands = {"cluster": cluster_command, "train": train_command, "general": general_command, "play": play_command,
                "upscale": upscale_command, "views order": order_command, "views upscale": views_upscale_command,
                "views sfm": sfm_command, "fleet": fleet_command}
    assert set(commands) == set(FLAG_VOCABULARY)
    for name, renamed in FLAG_VOCABULARY.items():
        flags = {opt for p in commands[name].params for opt in (*p.opts, *p.secondary_opts)}
        arguments = {p.human_readable_name for p in commands[name].params if isinstance(p, click.Argument)}
        assert commands[name].renamed == renamed
        assert not set(renamed) & flags, name  # --help lists the new spellings only
        assert {v for v in renamed.values() if v.startswith("--")} <= flags, name
        assert {v for v in renamed.values() if not v.startswith("--")} <= arguments, name  # a required output
    code, _, err, _ = cli(train_command, [tmp_path / "no-run", "--lr", "1e-3", "--crop=16"])
    assert code == 2  # parsed as --learning-rate and --crop-size; then the missing RUN is the one error
    assert "Warning: train --lr is now --learning-rate" in err and "Warning: train --crop is now --crop-size" in err
    assert err.strip().splitlines()[-1].startswith("Error: ") and "does not exist" in err
    code, _, err, _ = cli(order_command, [tmp_path / "no-scene", "--out", tmp_path / "order"])
    assert code == 2 and "Warning: order --out is now the argument OUT" in err  # its value taken as OUT
    assert "Missing argument" not in err and "no-scene" in err.strip().splitlines()[-1]


def test_a_new_runtime_is_one_file_and_one_table_entry(tmp_path, monkeypatch):
    """A format whose runner lives in a file of its own: one FORMATS entry makes open_runner dispatch to it."""
    import sys

    import numpy as np
    import torch

    from stdo.runtimes import FileFormat, open_runner

    (tmp_path / "scaled_runtime.py").write_text(
        "import numpy as np, torch\n"
        "def open_scaled(path, threads, reference):\n"
        "    factor = float(np.load(path))\n"
        "    return lambda x: torch.nn.functional.interpolate(x, scale_factor=factor, mode='nearest')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(FORMATS, "scaled", FileFormat("scaled", ".npy", ("fp32",), False, "numpy", (),
                                                      "scaled_runtime:open_scaled", None))
    np.save(tmp_path / "model0.npy", np.float32(2))
    runner = open_runner("scaled", tmp_path / "model0.npy")
    out = runner(torch.ones(1, 3, 4, 5))
    assert out.shape == (1, 3, 8, 10) and "scaled_runtime" in sys.modules
    assert FORMATS["scaled"].filename(0, "fp32") == "model0.npy"


@pytest.mark.parametrize("path", [*sorted((ROOT / "play").glob("*.py")), *sorted((ROOT / "upscale").glob("*.py"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_players_and_upscale_import_nothing_from_export(path):
    """They run or read what export wrote, through the format table."""
    assert not sorted(m for m in imported_modules(path) if m.startswith("stdo.export")), path


def test_tiling_needs_no_video_library():
    assert not imported_modules(ROOT / "infer.py") & {"av", "stdo.video", "stdo.stream", "stdo.clip"}
    assert not imported_modules(ROOT / "resample.py") & {"av", "PIL", "stdo.video", "stdo.stream"}


def _containers_opened_for_reading(path: Path) -> list[int]:
    """Lines where a file calls av.open without a writing mode."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "av"):
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            if not (isinstance(mode, ast.Constant) and str(mode.value).startswith("w")):
                lines.append(node.lineno)
    return lines


def test_one_video_handle_reads_every_container():
    """stdo.video.open_video is the only reader of a video file; a second av.open for reading fails here."""
    readers = {str(p.relative_to(ROOT)): lines for p in sorted(ROOT.rglob("*.py"))
               if (lines := _containers_opened_for_reading(p))}
    assert list(readers) == ["video.py"], readers
    assert _containers_opened_for_reading(ROOT / "stream.py") == []  # it writes
    assert len(readers["video.py"]) == 1


def test_no_function_takes_more_than_seven_parameters():
    """A function that needs more is passing a RUN's or a stage's pieces apart: they belong in one object."""
    wide = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.arg not in ("self", "cls")]
                if len(names) > 7:
                    wide.add((path.relative_to(ROOT).as_posix(), node.name))
    assert not wide, f"more than 7 parameters (group them in a dataclass): {sorted(wide)}"


def test_the_bundle_folder_and_its_manifest_are_named_once():
    """`manifest.json` is stdo.bundle.MANIFEST and a RUN's `bundle/` is stdo.rundir.BUNDLE: no module joins a path
    with either spelled again (docstrings, messages and report keys may say the words)."""
    spelled = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "manifest.json":
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                    and str(node.right.value).startswith("bundle"):
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert spelled == [f"bundle.py:{_line_of('bundle.py', 'MANIFEST = ')}"], spelled


def _line_of(module: str, text: str) -> int:
    return next(i for i, line in enumerate((ROOT / module).read_text().splitlines(), 1) if line.startswith(text))


def _raised_messages() -> list[tuple[str, str]]:
    """(where, text) of every exception a library module of stdo/ raises, f-string values as `{}`."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name in ("cli.py", "clitools.py") or path.name.endswith("_cli.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                parts = [n.value if isinstance(n, ast.Constant) else "{}" for n in ast.walk(node.exc)
                         if isinstance(n, ast.FormattedValue) or (isinstance(n, ast.Constant) and isinstance(n.value, str))]
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", "".join(parts)))
    return found


def test_no_library_message_names_a_flag():
    """Library errors name option fields (`crf`) or settings of another command (`overwrite=True`); each CLI writes
    them as its flags, so a Python caller never reads a flag it has no way to type."""
    flags = [(where, text) for where, text in _raised_messages() if re.search(r"(?<![\w-])--[a-z]", text)]
    assert not flags, flags


def test_each_setting_advised_for_another_command_is_one_of_its_flags():
    from stdo.cli import main as stdo_group

    advised = 0
    for where, text in _raised_messages():
        for command, settings in re.findall(r"stdo-([a-z]+)((?:[^`]*`[a-z_]+=[^`]*`)+)", text):
            opts = {o for p in stdo_group.commands[command].params for o in (*p.opts, *p.secondary_opts)}
            for field in re.findall(r"`([a-z_]+)=", settings):
                advised += 1
                assert f"--{field.replace('_', '-')}" in opts, f"{where}: stdo-{command} has no flag for `{field}`"
    assert advised >= 10


def test_a_cli_writes_advised_settings_as_flags():
    from stdo.clitools import as_flags

    command = click.Command("x", params=[click.Option(["--out-crf", "crf"])])
    assert as_flags("rerun stdo-train with `method='stdo'` `restart=True`, or give `crf`", command) == \
        "rerun stdo-train with --method stdo --restart, or give --out-crf"
    assert as_flags("`evaluate=False`", command) == "--no-evaluate"
