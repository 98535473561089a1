"""MkDocs hooks: benchmark results read from benchmarks/results/ (never pasted), with the date they were committed.

In a page, a line `{{ results("benchmarks/results/NAME.md") }}` becomes that file's text, its headings moved
down two levels so they sit under the page's own, followed by where it came from and the date of the commit
that last wrote it. A line `{{ docstring("stdo.module") }}` becomes that module's docstring as a preformatted
block: the file formats are specified there, once, and laid out for a fixed-width font. A line
`{{ include("FILE.md") }}` becomes that repository file's text without its title (CHANGELOG.md).
The plots under benchmarks/results/ are served at results/... so pages can show them.
A results file, module or file that does not exist fails the build.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DIRECTIVE = re.compile(r'^\{\{ results\("([^"]+)"\) \}\}$', re.MULTILINE)
INCLUDE = re.compile(r'^\{\{ include\("([^"]+)"\) \}\}$', re.MULTILINE)
DOCSTRING = re.compile(r'^\{\{ docstring\("([\w.]+)"\) \}\}$', re.MULTILINE)


def _committed(path: Path) -> str:
    """The date of the last commit that touched `path` (YYYY-MM-DD), or 'not committed'."""
    try:
        # --follow past a move (r: not the move itself), so a results file moved into its folder keeps its date
        date = subprocess.run(["git", "log", "-1", "--follow", "--diff-filter=r", "--format=%cs", "--", str(path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        date = ""
    return date or "not committed"


def _results_block(relative: str) -> str:
    path = (ROOT / relative).resolve()
    if not path.is_file() or RESULTS not in path.parents:
        raise PluginError(f"results file {relative} does not exist under benchmarks/results/")
    text = path.read_text()
    text = re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", text, flags=re.MULTILINE)
    return f"{text.rstrip()}\n\n*From `{relative}`, committed {_committed(path)}.*\n"


def _docstring_block(module: str) -> str:
    path = ROOT.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    text = ast.get_docstring(ast.parse(path.read_text())) if path.is_file() else None
    if not text:
        raise PluginError(f"module {module} has no docstring to show")
    return f"```text\n{text}\n```\n\n*The docstring of `{module}`.*\n"


def _include(relative: str) -> str:
    path = (ROOT / relative).resolve()
    if not path.is_file() or ROOT not in path.parents:
        raise PluginError(f"{relative} is not a file of this repository")
    return re.sub(r"\A# .*\n", "", path.read_text())


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = INCLUDE.sub(lambda match: _include(match.group(1)), markdown)
    markdown = DOCSTRING.sub(lambda match: _docstring_block(match.group(1)), markdown)
    return DIRECTIVE.sub(lambda match: _results_block(match.group(1)), markdown)


def on_files(files, config):
    for plot in sorted(RESULTS.rglob("*.png")):
        files.append(File(f"results/{plot.relative_to(RESULTS).as_posix()}", str(RESULTS.parent), config["site_dir"],
                          config["use_directory_urls"]))
    return files
