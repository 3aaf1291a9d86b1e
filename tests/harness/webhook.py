"""A webhook endpoint that records what fabops posts (Discord's shape), for
notification tests. Bound to an address of the test's own: loopback, or our
side of a test container's veth pair."""
from __future__ import annotations

import http.server
import json
import threading


class Hook:
    def __init__(self, address: str = "127.0.0.1"):
        self.got = []
        got = self.got
        # a heartbeat sink too (docs/monitor.md, "Heartbeat"): each GET's
        # path and query, answered with `status` (a test sets 500 for a
        # sink that fails)
        self.gets = []
        self.status = 200
        sink = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                sink.gets.append(self.path)
                self.send_response(sink.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.HTTPServer((address, 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://{self.srv.server_address[0]}:{self.srv.server_address[1]}/hook"

    def texts(self, word: str = ""):
        return [g.get("content") or g.get("text") for g in self.got if word in (g.get("content") or g.get("text") or "")]

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
