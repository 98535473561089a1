"""Each option is declared once, in its stage's options dataclass: the commands' flags are the fields, by name,
with the fields' defaults, and a flag added to a dataclass is on the command with nothing else written."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from stdo.clitools import stdo_command
from stdo.cluster.cli import cluster_command
from stdo.cluster.pipeline import ClusterOptions
from stdo.deliver.cli import deliver_command
from stdo.deliver.pipeline import DeliverOptions
from stdo.export.cli import export_command
from stdo.export.pipeline import ExportOptions
from stdo.options import CommaList, click_options, flag, from_params
from stdo.play.cli import play_command
from stdo.play.pipeline import PlayOptions
from stdo.stream import StreamOptions
from stdo.fleet.cli import fleet_command
from stdo.fleet.engine import FleetOptions
from stdo.fleet.jobs import COLUMNS, VideoJob
from stdo.train.cli import train_command
from stdo.train.general import GeneralOptions
from stdo.train.general_cli import general_command
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions
from stdo.upscale.cli import upscale_command
from stdo.upscale.pipeline import UpscaleOptions
from stdo.views.cli import eval_command, order_command, synth_command, upscale_command as views_upscale_command
from stdo.views.pipeline import EvalOptions, OrderOptions, SynthOptions, UpscaleViewsOptions

STAGES = [(export_command, ExportOptions), (cluster_command, ClusterOptions), (cluster_command, StreamOptions),
          (play_command, PlayOptions), (upscale_command, UpscaleOptions), (train_command, TrainOptions),
          (train_command, TrainConfig), (train_command, MethodOptions), (synth_command, SynthOptions),
          (order_command, OrderOptions), (views_upscale_command, UpscaleViewsOptions), (eval_command, EvalOptions),
          (deliver_command, DeliverOptions), (general_command, GeneralOptions),
          (fleet_command, FleetOptions)]


def _flag_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "flag" in f.metadata]


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@pytest.mark.parametrize("command, options", STAGES, ids=lambda v: getattr(v, "__name__", None) or v.name)
def test_every_declared_field_is_its_commands_flag_with_its_default(command, options):
    params = {p.name: p for p in command.params}
    for f in _flag_fields(options):
        param = params.get(f.name)
        assert param is not None and f"--{f.name.replace('_', '-')}" in param.opts, (options.__name__, f.name)
        ctx = click.Context(command)
        default = param.get_default(ctx)
        parsed = param.type_cast_value(ctx, default) if default is not None else None
        assert parsed == _default(f) or (parsed in (None, ()) and _default(f) in (None, ())), (f.name, parsed)


def test_the_commands_take_other_stages_fields_with_their_declared_defaults():
    """stdo-deliver shows export's and training's fields with DeliverOptions' defaults (800 steps, int8)."""
    params = {p.name: p for p in deliver_command.params}
    ctx = click.Context(deliver_command)
    assert params["steps"].type_cast_value(ctx, params["steps"].get_default(ctx)) == \
        DeliverOptions(cluster=None, out=Path()).train.config.steps == 800
    assert params["quantize"].type_cast_value(ctx, params["quantize"].get_default(ctx)) == ("int8",)
    assert params["grid"].type_cast_value(ctx, params["grid"].get_default(ctx)) == ClusterOptions.grid


def test_the_jobs_columns_are_the_stages_fields():
    """A JOBS row of stdo-fleet takes each stage option as that stage declares it (default, parser, help); only
    the row's own columns are declared in the fleet."""
    stages = {ClusterOptions: ("scale", "grid", "chunks", "start", "frames", "crop"), StreamOptions: ("codec",),
              DeliverOptions: ("crf", "budget"), MethodOptions: ("model",), ExportOptions: ("format", "quantize"),
              TrainConfig: ("steps", "batch", "seed", "checkpoint_every")}
    declared = {f.name: f for cls, names in stages.items() for f in _flag_fields(cls) if f.name in names}
    jobs = {f.name: f for f in dataclasses.fields(VideoJob)}
    assert set(COLUMNS) == set(declared) | {"video", "name", "method", "workers"}
    for name, stage in declared.items():
        assert jobs[name].metadata["flag"] is stage.metadata["flag"], name
        assert _default(jobs[name]) == _default(stage) or name == "crf", name  # crf None: the stage decides


def test_a_field_added_to_a_dataclass_is_a_flag_of_its_command():
    @dataclass
    class Options:
        clip: Path
        frames_per_second: float = flag(25.0, "Frames per second of the clip.")
        codecs: tuple[str, ...] = flag(("h264",), "Codecs to try.", type=CommaList(("h264", "hevc")))

    @stdo_command("demo")
    @click.argument("clip", type=click.Path(path_type=Path))
    @click_options(Options)
    def command(**fields):
        click.echo(repr(from_params(Options, fields)))

    runner = CliRunner()
    shown = runner.invoke(command, ["--help"]).output
    assert "--frames-per-second FLOAT" in shown and "[default: 25.0]" in shown and "[default: h264]" in shown
    ran = runner.invoke(command, ["a.mp4", "--frames-per-second", "30", "--codecs", "hevc,h264"])
    assert ran.exit_code == 0 and ran.output.strip() == repr(Options(Path("a.mp4"), 30.0, ("hevc", "h264")))
    refused = runner.invoke(command, ["a.mp4", "--codecs", "vp9"])
    assert refused.exit_code == 2 and refused.stderr.strip() == \
        "Error: --codecs 'vp9' is unknown: use one or more of h264,hevc"
