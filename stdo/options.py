"""A stage's options dataclass is its command-line schema: each field declared once, with its default, help and parser.

A field declared with `flag(...)` becomes the option `--<field name with _ as ->` of every command that exposes it
(`click_options`), so the flag, the parameter click passes and the dataclass field are one name, and a library
message naming a field in backticks (`plan_shapes`) reads as the flag (--plan-shapes) in every command
(stdo.clitools.as_flags). A command that exposes another stage's fields (stdo-deliver: export's `format` and
`quantize`) takes them from that stage's dataclass, with the defaults of the instance it builds on.

Values that need parsing (comma-separated lists, "auto" or a number) are click ParamTypes, written once here; a
value that fails to parse is a StdoError naming the field, which a stdo command prints as one line naming the flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import click

from stdo.errors import StdoError


@dataclass(frozen=True)
class Flag:
    """How a field reads on the command line (its name and default are the field's)."""

    help: str
    type: Any = None  # a click ParamType or a Python type; None: click infers it from the default
    metavar: str | None = None
    negatable: bool = False  # a bool field as --name/--no-name (default True fields)
    required: bool = False  # the command needs it given (its library default None is refused by the stage's check)


def flag(default: Any, help: str, **how) -> Any:
    """A dataclass field that is also a command-line option (Flag's fields as keywords)."""
    return dataclasses.field(default=default, metadata={"flag": Flag(help, **how)})


def same_as(cls: type, name: str, default: Any = dataclasses.MISSING) -> Any:
    """Another stage's flag field, declared there once, as a field of this dataclass (stdo-upscale's output stream
    options are stdo-play's), with its default or this command's own (stdo-general's model)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return dataclasses.field(default=f.default if default is dataclasses.MISSING else default, metadata=f.metadata)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _shown(value: Any, kind: Any) -> Any:
    """A default as a user types it: "auto" for None where that is the value's meaning, a parsed value as its text
    (a grid: 10x5), tuples comma-joined (empty: none)."""
    if value is None:
        return "auto" if isinstance(kind, AutoOr) else None
    if isinstance(kind, Parsed):
        return kind.show(value)
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or None
    return value


def click_options(cls: type, only: Sequence[str] | None = None, defaults: Any = None) -> Callable:
    """A decorator adding a click option for each flag field of dataclass `cls` (those named in `only`, in that
    order), with the defaults of the instance `defaults` where given (a command that builds on another instance than
    the dataclass's defaults)."""
    declared = {f.name: f for f in dataclasses.fields(cls) if "flag" in f.metadata}
    names = list(only) if only is not None else list(declared)
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ValueError(f"{cls.__name__} declares no flag field {unknown[0]!r}")

    def default_of(f: dataclasses.Field) -> Any:
        if defaults is not None:
            return getattr(defaults, f.name)
        if f.default is not dataclasses.MISSING:
            return f.default
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else None

    def decorate(command: Callable) -> Callable:
        for name in reversed(names):
            f = declared[name]
            how: Flag = f.metadata["flag"]
            value = default_of(f)
            decls = [flag_name(name)]
            kwargs: dict[str, Any] = {"help": how.help, "metavar": how.metavar, "required": how.required}
            if isinstance(value, bool) and how.negatable:
                decls = [f"{flag_name(name)}/--no-{name.replace('_', '-')}"]
                kwargs.update(default=value, show_default=True)
            elif isinstance(value, bool):
                kwargs.update(is_flag=True, default=value)
            else:  # a default shown as typed (a list comma-joined, auto), which click parses like a typed value
                shown = _shown(value, how.type)
                kind = how.type if how.type is not None else type(value) if value is not None else None
                if shown in (None, ""):
                    kwargs.update(type=kind, default=value, show_default=False)
                else:
                    kwargs.update(type=kind, default=shown, show_default=True)
            command = click.option(*decls, name, **kwargs)(command)
        return command

    return decorate


def from_params(cls: type, params: dict[str, Any], **fixed: Any) -> Any:
    """`cls` built from the click parameters that are its fields (and `fixed`, for fields not on the command line)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in params.items() if k in names}, **fixed)


def parse_list(text: str | tuple | list, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    """'onnx,tflite' -> ('onnx', 'tflite'), checked against `allowed` (lowercased, order kept, duplicates dropped);
    `option` names the field in the message."""
    items = [s.strip().lower() for s in text.split(",")] if isinstance(text, str) else [s.lower() for s in text]
    items = [s for s in items if s]
    unknown = [s for s in items if s not in allowed]
    if unknown:
        raise StdoError(f"{option} {unknown[0]!r} is unknown: use one or more of {','.join(allowed)}")
    return tuple(dict.fromkeys(items))


class CommaList(click.ParamType):
    """'onnx,tflite' -> ('onnx', 'tflite'): each item one of `choices` (lowercased, order kept, duplicates dropped);
    without choices, each item parsed by `item` (e.g. int)."""

    def __init__(self, choices: Sequence[str] | None = None, item: Callable = str, example: str = "") -> None:
        self.choices, self.item, self.example = tuple(choices) if choices else None, item, example
        self.name = "list"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{'|'.join(self.choices)}],..." if self.choices else f"{param.name.upper()},..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple:
        if isinstance(value, tuple):
            return value
        if self.choices is not None:
            return parse_list(str(value), self.choices, _named(param))
        items = [s.strip() for s in str(value).split(",") if s.strip()]
        try:
            return tuple(self.item(s) for s in items)
        except ValueError:
            raise StdoError(f"{_named(param)} {value!r}: give {self.item.__name__}s separated by commas, e.g. "
                            f"{self.example}") from None


class AutoOr(click.ParamType):
    """'auto' -> None, else the value parsed by `item` (e.g. int)."""

    def __init__(self, item: Callable = int, what: str = "a number") -> None:
        self.item, self.what, self.name = item, what, "auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        try:
            return self.item(value)
        except ValueError:
            raise StdoError(f"{_named(param)} {value!r} is not {self.what}: give {self.what} or auto") from None


def _named(param: click.Parameter | None) -> str:
    """The field a value was given for, as library messages name it (a command shows its flag)."""
    return f"`{param.name}`" if param is not None else "the value"


class Parsed(click.ParamType):
    """A value read by `parse` (text -> value, raising StdoError that names what it read), e.g. stdo.grid.parse_grid:
    '10x5' -> (10, 5), and shown by `show` (a default in --help)."""

    def __init__(self, parse: Callable[[str], Any], show: Callable[[Any], str] = str, name: str = "text") -> None:
        self.parse, self.show, self.name = parse, show, name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return self.parse(value) if isinstance(value, str) else value
