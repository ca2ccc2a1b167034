"""Fixtures of the Dask tests: one LocalCluster per module, and a folder served over HTTP with ranges."""
from __future__ import annotations

import functools
import http.server
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """One cluster for the module: starting worker processes costs seconds each time."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges, which GDAL's /vsicurl/ reads COGs by."""

    def send_head(self):  # noqa: ANN201
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        start = int(match[1])
        end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start:end + 1])

    def log_message(self, *args: object) -> None:
        pass


def serve(folder: str) -> None:
    """Serve ``folder`` on a free port of 127.0.0.1 and print the port (run in a process of its own)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=folder))
    print(server.server_address[1], flush=True)
    server.serve_forever()


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (with ranges), and its URL. The server is another process, as
    a real one is: one in this process would wait for the GIL while GDAL holds it opening a URL here."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = subprocess.Popen([sys.executable, "-c", f"from tests.inference.conftest import serve; "
                               f"serve({str(folder)!r})"], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        port = int(server.stdout.readline())
        yield folder, f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
