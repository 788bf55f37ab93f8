"""Serve the browser example on http://127.0.0.1:8080/examples/web/ (`npm run serve`).

Only on this machine (127.0.0.1), and only what the page loads: its own files, the shared noise
module, onnxruntime-web's files, and the package folders a model is read from (exported/ and dist/).
Every other path of the repository, a path that climbs out (`..`) or a link that leaves those
folders, gets 404. Standard library only.
"""

import argparse
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
SERVED = ("examples/web", "examples/shared", "exported", "dist")
PRIVATE = ("examples/web/node_modules",)                      # but for onnxruntime-web's files:
MODULES = ("examples/web/node_modules/onnxruntime-web/dist",)


def served(url_path: str) -> bool:
    """Whether the file a URL names is one the page may load."""
    target = (ROOT / unquote(urlsplit(url_path).path).lstrip("/")).resolve()

    def under(folders) -> bool:
        return any(target == ROOT / f or target.is_relative_to(ROOT / f) for f in folders)
    return under(MODULES) or (under(SERVED) and not under(PRIVATE))


class Handler(SimpleHTTPRequestHandler):
    def send_head(self):
        if not served(self.path):
            self.send_error(404, "not part of the browser example")
            return None
        return super().send_head()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def make_server(host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(ROOT)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    port = parser.parse_args().port
    print(f"serving the browser example on http://127.0.0.1:{port}/examples/web/ (Ctrl-C to stop)")
    make_server(port=port).serve_forever()
