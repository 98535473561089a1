"""What every stdo CLI shares: one-line errors with exit code 2, progress bars, logging."""

from __future__ import annotations

import errno
import logging
import re
import sys
import traceback

import click
from tqdm import tqdm

from stdo.errors import StdoError

EXIT_BAD_INPUT = 2
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# One idea, one flag, in every command: the flags whose spelling changed so that each means one thing
# (command -> old -> new). The old spellings still work, with a warning.
FLAG_VOCABULARY = {
    "cluster": {"--lr": "--lr-video", "--force": "--overwrite"},
    "train": {"--lr": "--learning-rate", "--crop": "--crop-size", "--no-eval": "--no-evaluate"},
    "general": {"--lr": "--learning-rate", "--crop": "--crop-size"},
    "play": {"--video": "--lr-video", "--crf": "--out-crf", "--preset": "--out-preset", "--batch": "--frames-per-batch"},
    "upscale": {"--crf": "--out-crf", "--preset": "--out-preset", "--batch": "--frames-per-batch"},
    "views order": {"--video": "--write-mp4", "--out": "OUT"},
    "views upscale": {"--out": "OUT"},
    "views sfm": {"--out": "OUT"},
    "fleet": {"--out": "OUT"},
}
# A required output is the last argument (stdo-cluster SOURCE RUN, stdo-views order SCENE OUT); an optional one is
# --out. A renaming to an argument's name (OUT) moves the old flag's value there.


class StdoCommand(click.Command):
    """A click command that turns StdoError into `Error: ...` on stderr and exit code 2, no traceback.

    Option callbacks run while parsing, the work while invoking: both are covered. An OS error or a runtime's
    own error is one line too, with its traceback above it under -v (where it came from is then the question).

    `renamed` maps a flag's old spelling to its new one (FLAG_VOCABULARY): the old one still works, with a
    warning on stderr, and is not listed in --help.
    """

    def __init__(self, *args, renamed: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = renamed or {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, self._to_arguments([self._respell(a) for a in args]))
        except StdoError as e:
            _fail(ctx, e)

    def _to_arguments(self, args: list[str]) -> list[str]:
        """An old flag that became an argument (`--out X` -> the argument OUT): its value moves to the end."""
        moved = [old for old, new in self.renamed.items() if not new.startswith("-")]
        out, tail, i = [], [], 0
        while i < len(args):
            flag, eq, value = args[i].partition("=")
            if flag in moved and (eq or i + 1 < len(args)):
                tail.append(value if eq else args[i + 1])
                i += 1 if eq else 2
                continue
            out.append(args[i])
            i += 1
        return out + tail

    def _respell(self, arg: str) -> str:
        old, eq, value = arg.partition("=")
        if old not in self.renamed:
            return arg
        if not self.renamed[old].startswith("-"):  # now an argument: moved by _to_arguments
            click.echo(f"Warning: {self.name} {old} is now the argument {self.renamed[old]}; the old spelling goes in "
                       "a later release", err=True)
            return arg
        click.echo(f"Warning: {self.name} {old} is now {self.renamed[old]}; the old spelling goes in a later "
                   "release", err=True)
        return self.renamed[old] + eq + value

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StdoError as e:
            _fail(ctx, e)
        except OSError as e:  # disk full, permission denied, a read-only RUN: the atomic writes left nothing half-done
            _traceback_if_verbose(ctx)
            _fail(ctx, StdoError(describe_os_error(e)))
        except Exception as e:  # noqa: BLE001 - a runtime's own errors (bad model file, shapes) become one line
            runtime = _runtime_of(e)
            if runtime is None:
                raise
            first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:300]
            _traceback_if_verbose(ctx)
            _fail(ctx, StdoError(f"{runtime} failed: {first}: check the model files (rerun stdo-export)"))
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing was half-written; rerun the same command to go on.", err=True)
            ctx.exit(130)


RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "ai_edge_litert": "LiteRT", "coremltools": "coremltools"}


def _runtime_of(e: BaseException) -> str | None:
    """The inference runtime an exception comes from, if any."""
    module = type(e).__module__ or ""
    return next((name for prefix, name in RUNTIME_MODULES.items() if module.startswith(prefix)), None)


def describe_os_error(e: OSError) -> str:
    """One line for an OS error: what happened, to which file, and what to do."""
    where = f" ({e.filename})" if e.filename else ""
    advice = {
        errno.ENOSPC: "no space left on the device" + where + ": free some space (or write elsewhere) and rerun; "
                      "nothing was half-written",
        errno.EDQUOT: "disk quota exceeded" + where + ": free some space and rerun; nothing was half-written",
        errno.EFBIG: "file too large for this filesystem or limit" + where + ": write elsewhere",
        errno.EROFS: "read-only filesystem" + where + ": give a writable folder (copy the RUN elsewhere)",
        errno.EACCES: "permission denied" + where + ": give a folder you can write to, or fix its permissions",
        errno.EPERM: "operation not permitted" + where + ": give a folder you can write to",
    }
    return advice.get(e.errno, f"{e.strerror or e.__class__.__name__}{where}: check the path and rerun")


def _traceback_if_verbose(ctx: click.Context) -> None:
    if ctx.params.get("verbose"):
        click.echo(traceback.format_exc().rstrip(), err=True)


def as_flags(message: str, command: click.Command) -> str:
    """A library message with its option fields (`start`, `lr_video`) written as this command's flags (--start,
    --lr-video) or arguments (SOURCE); a field the command does not have loses its backticks. A setting advised for
    another command (`overwrite=True`, `method='stdo'`) is written by the one rule every stdo flag follows (the field
    with `_` as `-`): --overwrite, --no-evaluate for False, --method stdo."""
    names = {}
    for param in command.params:
        if isinstance(param, click.Argument):
            names[param.name] = param.human_readable_name
        else:
            names[param.name] = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    message = re.sub(r"`([a-z][a-z0-9_]*)=([^`]+)`", lambda m: setting_as_flag(m.group(1), m.group(2)), message)
    return re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: names.get(m.group(1), m.group(1)), message)


def setting_as_flag(field: str, value: str) -> str:
    """`field=value` (the value as Python writes it) as the command line gives it: True -> --field, False ->
    --no-field, else --field value."""
    flag = field.replace("_", "-")
    if value in ("True", "False"):
        return f"--{flag}" if value == "True" else f"--no-{flag}"
    return f"--{flag} {value.strip(chr(39))}"


def _fail(ctx: click.Context, error: StdoError) -> None:
    click.echo(f"Error: {as_flags(str(error), ctx.command)}", err=True)
    ctx.exit(EXIT_BAD_INPUT)


def stdo_command(name: str, epilog: str | None = None, group: click.Group | None = None, **kwargs):
    """click.command (or `group`'s subcommand) as every stdo command is made: StdoCommand, its renamed flags from
    FLAG_VOCABULARY, -h/--help, the help width."""
    key = f"{group.name} {name}" if group is not None else name
    make = group.command if group is not None else click.command
    return make(name, cls=StdoCommand, renamed=FLAG_VOCABULARY.get(key), context_settings=CONTEXT_SETTINGS,
                epilog=epilog, **kwargs)


class StageBars:
    """Progress callback `(stage, advance, total)` drawing one tqdm bar per stage."""

    def __init__(self, unit: str = "frame", disable: bool = False) -> None:
        self.unit, self.disable = unit, disable
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:>8}", unit=self.unit, disable=self.disable, file=sys.stderr,
                            dynamic_ncols=True, leave=False)
        self.bar.update(advance)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.stage = None, None

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
