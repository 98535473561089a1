"""The web player (this folder) served beside bundles, and driven in headless Chromium.

A script beside the page, not part of the stdo package: `python android_demo/web/stdo_web.py BUNDLE`
serves a bundle to a browser on this machine; tests/test_web.py and benchmarks/web_speed.py import it.

`serve` serves the player at /web/ and each given folder at /<name>/ from a background thread,
with the headers that make the page cross-origin isolated (COOP/COEP), which WASM threads need.
`drive` runs android_demo/web/test/drive.mjs (playwright-core with Debian's chromium) on a list
of jobs and returns what the page reported. Tests and benchmarks/web_speed.py use both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from stdo.errors import StdoError

WEB_ROOT = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


class _Handler(SimpleHTTPRequestHandler):
    """Serves regular files under the mounted folders only: a bundle is untrusted, so a link inside it is followed
    only to a file inside the same folder, nothing is listed, and a request must name the address served (Host),
    so a page of another origin that rebinds a name to 127.0.0.1 reads nothing."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".mjs": "text/javascript",
                      ".wasm": "application/wasm", ".json": "application/json", ".mp4": "video/mp4",
                      ".onnx": "application/octet-stream", ".tflite": "application/octet-stream"}
    isolated = True
    mounts: dict[str, str] = {}  # URL's first segment -> the real path of the folder (or file) served there
    hosts: frozenset[str] = frozenset()  # the Host headers accepted

    def end_headers(self) -> None:
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def served_file(self, url: str) -> str | None:
        """The real path of the regular file `url` names inside its mount, or None."""
        path = unquote(urlsplit(url).path)
        parts = [p for p in path.split("/") if p]
        if "\0" in path or not parts or parts[0] not in self.mounts or any(p in (".", "..") for p in parts):
            return None
        root = self.mounts[parts[0]]
        try:
            target = os.path.realpath(os.path.join(root, *parts[1:]))
        except (OSError, ValueError):
            return None
        inside = target == root if os.path.isfile(root) else target.startswith(root + os.sep)
        return target if inside and os.path.isfile(target) else None

    def send_head(self):
        if self.headers.get("Host") not in self.hosts:
            self.send_error(403, "this server answers only the address it serves")
            return None
        target = self.served_file(self.path)
        if target is None:
            self.send_error(404)
            return None
        try:
            f = open(target, "rb")
        except OSError:
            self.send_error(404)
            return None
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(target))
        self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
        self.end_headers()
        return f

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up or sends garbage costs its own connection, with no traceback."""


@contextmanager
def serve(folders: dict[str, Path], isolated: bool = True, port: int = 0, web: Path = WEB_ROOT,
          priors: Path | None = None) -> Iterator[str]:
    """Serve the web player at /web/ (this folder, or `web`: e.g. an APK's assets/web), the priors it carries at
    /priors/ (the package's, as the APK's assets hold them, or `priors`) and each folder at /<name>/; yields the
    base URL (port 0: any free one). Raises StdoError if the port cannot be had."""
    from stdo.priors import PRIORS_DIR

    mounts = {name: os.path.realpath(folder) for name, folder in {"web": web, "priors": priors or PRIORS_DIR,
                                                                   **folders}.items()}
    handler = type("Handler", (_Handler,), {"isolated": isolated, "mounts": mounts})
    if not 0 <= port <= 65535:
        raise StdoError(f"`port` {port} is not a TCP port: give one in 0..65535 (0: any free one)")
    try:
        server = _Server(("127.0.0.1", port), handler)
    except OSError as e:
        raise StdoError(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e}): give another `port`") from None
    bound = server.server_address[1]
    handler.hosts = frozenset({f"127.0.0.1:{bound}", f"localhost:{bound}"})
    thread = threading.Thread(target=server.serve_forever, name="stdo-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{bound}/"
    finally:
        server.shutdown()
        server.server_close()


def missing_tools() -> list[str]:
    """What the web player's tests need and this machine lacks (make android-deps installs it)."""
    missing = [tool for tool in ("node",) if shutil.which(tool) is None]
    if not Path(CHROMIUM).is_file():
        missing.append(f"chromium ({CHROMIUM})")
    for package in ("playwright-core", "onnxruntime-web", "@litertjs/core", "mp4box"):
        if not (WEB_ROOT / "node_modules" / package).is_dir():
            missing.append(f"node_modules/{package} (npm ci in android_demo/web)")
    return missing


def drive(page_url: str, jobs: list[dict], timeout: float = 900) -> dict:
    """Run `jobs` in the page at `page_url` (headless Chromium); returns {results: [...], logs: [...]}."""
    with tempfile.TemporaryDirectory(prefix="stdo-drive-") as tmp:
        jobs_path, out_path = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs_path.write_text(json.dumps(jobs))
        # its own session, so that a timeout kills the driver and every browser process it started (none of them
        # left holding the pipes that communicate() reads to their end)
        proc = subprocess.Popen(["node", str(WEB_ROOT / "test" / "drive.mjs"), page_url, str(jobs_path),
                                 str(out_path)], cwd=WEB_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "CHROMIUM": CHROMIUM}, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise StdoError(f"the web player's driver did not finish within {timeout:.0f} s: "
                            f"{' | '.join((stderr or stdout).strip().splitlines()[-5:])}") from None
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if done.returncode != 0 or not out_path.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            tail = [line for line in lines if line.startswith("drive: ")] or lines[-5:]
            raise StdoError(f"the web player's driver failed (exit {done.returncode}): {' | '.join(tail)}")
        return json.loads(out_path.read_text())


def main() -> None:
    """python android_demo/web/stdo_web.py BUNDLE [--port N]: serve the web player and a bundle on this machine until Ctrl-C."""
    import time

    import click

    @click.command()
    @click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
                  help="Port on 127.0.0.1 (0: any free one).")
    def command(bundle: Path, port: int) -> None:
        try:
            with serve({"bundle": bundle}, port=port) as base:
                click.echo(f"open {base}web/index.html?bundle=/bundle/  (Ctrl-C stops)")
                while True:
                    time.sleep(3600)
        except StdoError as e:
            raise click.UsageError(str(e).replace("`port`", "--port")) from None
        except KeyboardInterrupt:
            pass

    command()


if __name__ == "__main__":
    main()
