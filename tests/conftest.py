"""Shared fixtures: a real HTTP server on 127.0.0.1 that serves files with Range support, and
another user of this machine for the tests of what a second user may do."""

from __future__ import annotations

import http.server
import os
import pwd
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FileServer:
    """Serves ``root`` over HTTP. ``cut_after[name] = n`` drops the connection after n bytes of
    that file, once, the way a flaky network does; ``requests`` records each request's headers."""

    root: Path
    port: int = 0
    cut_after: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: FileServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            name = self.path.lstrip("/").split("?")[0]
            rng = self.headers.get("Range")
            server.requests.append((name, rng))
            path = server.root / name
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = server.cut_after.pop(name, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    fs = FileServer(root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(fs))
    fs.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield fs
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def other_user() -> pwd.struct_passwd:
    """The user `nobody`, for a test that acts as a second user (needs root to act as one)."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")
