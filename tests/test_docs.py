"""The documentation holds: the site builds with --strict, each command's page is generated from the command, and
the README's quickstart runs as written on a small clip."""

from __future__ import annotations

import configparser
import html
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from stdo.cli import main as stdo_group
from stdo.clips import clip_path
from stdo.stream import encode_stream
from stdo.video import read_video

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _entry_points() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(line.replace(" ", "").split("=") for line in lines)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if os.environ.get("CI") != "true":  # CI installs the docs extra (make test): there a missing MkDocs fails
        pytest.importorskip("mkdocs")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_site_builds_strict_with_every_page(site):
    for page in (ROOT / "docs").rglob("*.md"):
        relative = page.relative_to(ROOT / "docs").with_suffix("")
        folder = relative.parent if relative.name == "index" else relative
        assert (site / folder / "index.html").is_file(), relative


def _flat(text: str) -> str:
    """Text as one line: whitespace runs made one space, and click's wrap after a hyphen undone."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


@pytest.mark.parametrize("script", sorted(set(_entry_points()) - {"stdo"}))
def test_each_command_page_is_its_help(site, script):
    """Every console script has a page whose reference lists each of its options (and subcommand) with the help
    text the command itself carries: a flag added, renamed or reworded changes the page."""
    command = stdo_group.commands[script.removeprefix("stdo-")]
    text = _flat(html.unescape(re.sub(r"<[^>]+>", "", (site / "commands" / command.name / "index.html").read_text())))
    commands = list(command.commands.values()) if isinstance(command, click.Group) else [command]
    for sub in commands:
        for param in sub.params:
            if isinstance(param, click.Option) and param.help and not param.hidden:
                for opt in param.opts:
                    assert opt in text, f"{script} {sub.name}: {opt} missing from its page"
                assert _flat(param.help)[:60] in text, f"{script} {sub.name} {param.opts}: help missing"


def _quickstart() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart:[^>]*-->\n```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md lost its quickstart block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_quickstart_runs_as_written(tmp_path):
    """The quickstart's lines run unchanged but for the clip (8 small frames of bikes) and the step budget; the
    last line serves the web player, whose page and bundle are fetched from the URL it prints."""
    frames, _ = read_video(clip_path("bikes"), start=40, count=8, box=(160, 64, 320, 160))
    encode_stream(tmp_path / "my_clip.mp4", list(frames))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "2"}
    lines = _quickstart()
    assert [shlex.split(line)[0] for line in lines] == ["stdo-cluster", "stdo-train", "stdo-export", "stdo-play",
                                                         "python"]
    for line in lines[:-1]:
        args = shlex.split(re.sub(r"--steps \d+", "--steps 30", line))
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
    assert (tmp_path / "runs/my_clip/sr.mp4").stat().st_size > 0
    assert "vs  HR H.264" in done.stdout  # --rate priced the HR stream

    args = shlex.split(lines[-1].replace("python", sys.executable, 1)) + ["--port", "0"]
    args[1] = str(ROOT / args[1])
    server = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        url = re.search(r"open (\S+)", first)
        assert url, first + server.stderr.read()
        import urllib.request

        page = urllib.request.urlopen(url.group(1), timeout=30).read().decode()
        assert "<script" in page
        base = url.group(1).split("web/")[0]
        manifest = urllib.request.urlopen(base + "bundle/manifest.json", timeout=30).read()
        assert b'"stdo-bundle"' in manifest
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_python_api_example_runs(tmp_path):
    """The Python API page's first example (cluster, train, export, play on 8 frames) runs as printed."""
    page = (ROOT / "docs" / "python.md").read_text()
    example = re.search(r"```python\n(.*?)```", page, re.DOTALL).group(1).replace("    ...", "    assert sr.shape[0] == 4 * lr.shape[0]")
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs/bikes/bundle/manifest.json").is_file()
