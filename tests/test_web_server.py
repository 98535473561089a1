"""The web player's server treats a bundle as untrusted: only regular files inside what it serves, only for the
address it serves, and bad requests or flags cost one line, never a traceback."""

import http.client
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "android_demo" / "web"))
from stdo_web import serve  # noqa: E402 - the page's own harness, beside it

SCRIPT = Path(__file__).resolve().parents[1] / "android_demo" / "web" / "stdo_web.py"


def _get(base: str, path: str, host: str | None = None) -> tuple[int, bytes]:
    port = int(base.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    conn.endheaders()
    response = conn.getresponse()
    return response.status, response.read()


@pytest.fixture
def hostile_bundle(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "models").mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (bundle / "leak").symlink_to("/etc/passwd")
    (bundle / "models" / "rootfs").symlink_to("/", target_is_directory=True)
    (bundle / "models" / "inside").symlink_to(bundle / "manifest.json")
    (tmp_path / "secret.txt").write_text("secret")
    return bundle


def test_only_regular_files_inside_the_bundle_are_served(hostile_bundle, capfd):
    with serve({"bundle": hostile_bundle}) as base:
        assert _get(base, "/bundle/manifest.json") == (200, b"{}")
        assert _get(base, "/bundle/models/inside")[0] == 200  # a link to a file of the same bundle
        for path in ("/bundle/leak", "/bundle/models/rootfs/etc/passwd", "/bundle/models/rootfs/", "/bundle/",
                     "/bundle/../secret.txt", "/bundle/%2e%2e/secret.txt", "/bundle/%00", "/bundle/x%00y", "/",
                     "/nothing/manifest.json"):
            status, body = _get(base, path)
            assert status == 404 and b"root:" not in body, path
        assert _get(base, "/web/index.html")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_another_host_name_is_refused(hostile_bundle):
    """A page of another origin whose name was rebound to 127.0.0.1 sends its own Host: it reads nothing."""
    with serve({"bundle": hostile_bundle}) as base:
        port = base.rstrip("/").rsplit(":", 1)[1]
        assert _get(base, "/bundle/manifest.json", host=f"localhost:{port}")[0] == 200
        assert _get(base, "/bundle/manifest.json", host=f"evil.example:{port}")[0] == 403
        assert _get(base, "/bundle/manifest.json", host="127.0.0.1")[0] == 403


def test_a_port_out_of_range_or_in_use_is_one_line_exit_2(hostile_bundle):
    out = subprocess.run([sys.executable, SCRIPT, hostile_bundle, "--port", "99999"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "--port" in out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, SCRIPT, hostile_bundle, "--port", str(port)], capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("Error:") and "another --port" in out.stderr
