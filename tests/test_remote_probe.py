"""The agentless readiness probes, run by a real shell against real sockets."""
import http.server
import sys
import socket
import threading

import pytest
from invoke import Context

from fabops.inventory import Check
from fabops.checks import FROM_STDIN, RemoteProbe, http_check_cmd, http_check_input, parse_http_results, port_listening_cmd
from fabops.target import Target


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


def test_http_probe_needs_no_curl(server, tmp_path):
    """The check is the host's python3 running fabops/host/httpcheck.py: a
    PATH with only sh and python3 is enough."""
    import os
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("python3", "sh"):
        os.symlink(os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool), bindir / tool)
    checks = [Check(url=f"http://127.0.0.1:{server}/health"), Check(url=f"http://127.0.0.1:{server}/bad")]
    r = Target.of(Context()).run(http_check_cmd(FROM_STDIN, 2), check=False, stdin=http_check_input(checks),
                                 env={"PATH": str(bindir)}, replace_env=True)
    assert [res[0] for res in parse_http_results(r.stdout, 2)] == [200, 500]


def test_a_host_without_python3_says_so_for_each_check(tmp_path):
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sh").symlink_to(shutil.which("sh"))
    checks = [Check(url="http://127.0.0.1:9/a"), Check(url="http://127.0.0.1:9/b")]
    r = Target.of(Context()).run(http_check_cmd(FROM_STDIN, 2), check=False, stdin=http_check_input(checks),
                                 env={"PATH": str(bindir)}, replace_env=True)
    got = parse_http_results(r.stdout, 2)
    assert [g[0] for g in got] == [None, None]
    assert all("no python3 on the host" in g[1] for g in got), got


def test_hostile_check_values_are_data(server, tmp_path):
    canary = tmp_path / "canary"
    check = Check(url=f"http://127.0.0.1:{server}/health?$(touch {canary})", headers={"X": f"`touch {canary}`"})
    r = Target.of(Context()).run(http_check_cmd(FROM_STDIN), check=False, stdin=http_check_input(check))
    status, detail, _ = parse_http_results(r.stdout, 1)[0]
    assert (status, detail) == (None, "no answer (the URL holds a space or a control character)")
    assert not canary.exists()
    assert "'" in port_listening_cmd(80)


def test_parse_http_results_junk():
    assert parse_http_results("", 1) == [(None, "no answer", None)]
    assert parse_http_results("0 0.001 no answer (Connection refused)", 1)[0] == (None, "no answer (Connection refused)", 0.001)
    assert parse_http_results("200 0.01 HTTP 200\n", 2) == [(200, "HTTP 200", 0.01), (None, "no answer", None)]
    assert parse_http_results("garbage\n302 0.5 HTTP 302", 2)[1] == (302, "HTTP 302", 0.5)


def _sh(cmd, stdin="", path=None):
    import os
    import subprocess

    env = dict(os.environ, PATH=path) if path else None
    return subprocess.run(["sh", "-c", cmd], input=stdin, capture_output=True, text=True, env=env, timeout=30).stdout


def test_one_python3_says_what_the_owner_and_the_check_commands_say(server):
    """The monitor's one python3 for its ports and its checks
    (monitor._facts_source, with no fact of monitorfacts' to read) prints
    what port_owner_cmd and http_check_cmd print, each from its own
    python3. Without python3 the script's shell says the same as they do
    (tests/test_monitor_facts.py)."""
    import os

    from fabops import monitor
    from fabops.checks import port_owner_cmd
    from fabops.probe import split_sections
    from fabops.shell import sh

    checks = [Check(url=f"http://127.0.0.1:{server}/health"), Check(url=f"http://127.0.0.1:{server}/bad")]
    words = [str(server), str(os.getpid()), "process", str(server), "-", "systemd:bot"]
    both = sh("python3 -I -S -c {src} 0 {words}", src=monitor._facts_source(True, True), words=words)
    said = split_sections(_sh(both, http_check_input(checks)))
    owners, results = said["owners"], said["http"]
    alone = _sh(port_owner_cmd(server, os.getpid(), False)) + _sh(port_owner_cmd(server, None, True, "bot"))
    assert owners.splitlines() == alone.splitlines() and '"state": "own"' in owners
    separate = _sh(http_check_cmd(FROM_STDIN, 2), http_check_input(checks))
    assert [r[:2] for r in parse_http_results(results, 2)] == [r[:2] for r in parse_http_results(separate, 2)]
    assert [r[0] for r in parse_http_results(results, 2)] == [200, 500]
    assert said["errors"] == ""  # monitorfacts' last section, after the checks'
