"""The one exception type a user sees: a problem with their input, and how to fix it."""


class StdoError(Exception):
    """Bad input or an impossible request.

    The message is one line that names the problem and the fix; the CLIs print it
    without a traceback and exit with code 2. An option is named by its field in backticks
    (`start`, `crf`: the field of the options dataclass the caller set); a CLI prints each as its
    own flag (--start, --out-crf), so the library never names a flag that the caller did not type.
    """

    def plain(self) -> str:
        """The message with each field named as it is (`crf` -> crf): for a JOBS file, whose columns are fields."""
        return str(self).replace("`", "")


class FormatError(StdoError):
    """A file of a format several stages share (bundle, plan) is malformed: `bad <what>: <message>`."""

    what = "file"

    @classmethod
    def need(cls, condition: bool, message: str) -> None:
        if not condition:
            raise cls(f"bad {cls.what}: {message}")


def check_device(device: str) -> None:
    """Refuse a torch device this machine cannot give (one line), before any work starts."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise StdoError(f"`device` {device!r} is not a torch device: use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise StdoError(f"`device` {device} asked for, but torch sees no CUDA device: use `device` cpu")
    if kind not in ("cpu", "cuda"):
        raise StdoError(f"`device` {device}: stdo runs on cpu or cuda")
