"""The agentless readiness probes, run by a real shell against real sockets."""
import http.server
import sys
import socket
import threading

import pytest
from invoke import Context

from fabops.inventory import Check
from fabops.checks import RemoteProbe, http_check_cmd, parse_http_result, port_listening_cmd


@pytest.fixture
def server():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 500)
            self.end_headers()

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            self.send_response(201 if body == b'{"test": "health"}' and self.headers["X-K"] == "v" else 400)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()


class Ctx:
    """A Context that never reads stdin (pytest has none)."""

    def __init__(self):
        self.c = Context()

    def run(self, cmd, **kw):
        kw.setdefault("in_stream", False)
        return self.c.run(cmd, **kw)


def test_port_probe(server):
    probe = RemoteProbe(Ctx())
    assert probe.port_open(server)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not probe.port_open(closed)


def test_http_probe_get_and_post_with_json_and_headers(server):
    probe = RemoteProbe(Ctx())
    assert probe.http(Check(url=f"http://127.0.0.1:{server}/health"))[0] == 200
    assert probe.http(Check(url=f"http://127.0.0.1:{server}/bad"))[0] == 500
    post = Check(url=f"http://127.0.0.1:{server}/hook", method="POST", json={"test": "health"}, headers={"X-K": "v"})
    assert probe.http(post)[0] == 201


def test_http_probe_without_curl_falls_back_to_python(server, monkeypatch, tmp_path):
    # a PATH without curl, but with python3 and sh
    import os
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("python3", "sh"):
        os.symlink(os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool), bindir / tool)
    from fabops.checks import FROM_STDIN, http_check_input
    from fabops.target import Target

    check = Check(url=f"http://127.0.0.1:{server}/health")
    r = Target.of(Context()).run(http_check_cmd(check, FROM_STDIN), check=False, stdin=http_check_input(check),
                                 env={"PATH": str(bindir)}, replace_env=True)
    assert parse_http_result(r.stdout)[0] == 200


def test_hostile_check_values_are_data(server, tmp_path):
    canary = tmp_path / "canary"
    check = Check(url=f"http://127.0.0.1:{server}/health?$(touch {canary})", headers={"X": f"`touch {canary}`"})
    from fabops.checks import FROM_STDIN, http_check_input
    from fabops.target import Target

    Target.of(Context()).run(http_check_cmd(check, FROM_STDIN), check=False, stdin=http_check_input(check))
    assert not canary.exists()
    assert "'" in port_listening_cmd(80)


def test_parse_http_result_junk():
    assert parse_http_result("") == (None, "no answer", 0.0)
    assert parse_http_result("000 0.001")[0] is None
    assert parse_http_result("200 0.01")[:2] == (200, "HTTP 200")
