"""The one HTTP check (fabops/host/httpcheck.py) behaves the same on the host
side (the pipeline's readiness gate calls it in process) and through the
agentless path (a shell runs that file's source with the host's python3,
the check on stdin), against a real local server, with proxy variables set
that both must ignore (docs/architecture.md, "The HTTP check")."""
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from invoke import Context

from fabops.checks import RemoteProbe
from fabops.host import httpcheck
from fabops.host.readiness import LocalProbe
from fabops.inventory import Check
from fabops.target import Target


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler, tls=None):
        super().__init__(("127.0.0.1", 0), handler)
        self.got = []
        if tls is not None:  # an ssl.SSLContext: https, before any request
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class App(http.server.BaseHTTPRequestHandler):
    ROUTES = {"/ok": 200, "/fail": 500, "/redirect": 302, "/slow": 200}

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.server.got.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                self.rfile.read(n)))
        if self.path == "/slow":
            time.sleep(3)
        status = self.ROUTES.get(self.path, 404)
        if self.path == "/echo":
            status = 201 if self.headers.get("X-Token") == "t0k" and self.server.got[-1][3] == b"b\xc3\xa9" else 400
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *a):
        pass


class Proxy(http.server.BaseHTTPRequestHandler):
    """Stands where the proxy variables point: any request here is a check
    that went through a proxy."""

    def do_GET(self):
        self.server.got.append(self.path)
        self.send_response(599)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_HEAD = do_GET

    def log_message(self, *a):
        pass


@pytest.fixture
def servers(monkeypatch):
    app, proxy = Recorder(App), Recorder(Proxy)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield app, proxy
    app.shutdown()
    proxy.shutdown()
    app.server_close()
    proxy.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def both(check):
    """The check's (status, detail, latency) on the host side and through
    the agentless path (sh + python3 on this machine)."""
    return LocalProbe().http(check), RemoteProbe(Target.of(Context())).http(check)


def test_the_proxy_variables_are_live(servers):
    """The negative control: with these variables a client that honours
    them goes through the proxy, so the test below can fail."""
    app, proxy = servers
    # an opener of its own: urlopen's is process-wide, and an earlier test
    # in the same run may have installed one without proxies
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.build_opener().open(app.url + "/ok", timeout=5)
    assert err.value.code == 599 and proxy.got == [app.url + "/ok"]


@pytest.mark.parametrize("path, method, expect", [
    ("/ok", "GET", (200, "HTTP 200")),
    ("/fail", "GET", (500, "HTTP 500")),
    ("/redirect", "GET", (302, "HTTP 302")),  # not followed: the 3xx is the answer
    ("/ok", "HEAD", (200, "HTTP 200")),
    ("/slow", "GET", (None, "no answer (timed out after 0.5s)")),
    (None, "GET", (None, "no answer (Connection refused)")),
])
def test_one_check_one_answer_on_the_host_and_agentless(servers, path, method, expect):
    app, proxy = servers
    url = f"http://127.0.0.1:{closed_port()}/ok" if path is None else app.url + path
    check = Check(url=url, method=method, timeout=0.5)
    host, agentless = both(check)
    assert host[:2] == expect
    assert agentless[:2] == expect
    # one deadline for the whole check, on both sides
    assert host[2] < 2.0 and agentless[2] < 2.0
    assert proxy.got == []  # neither went through the proxy
    if path is not None:
        assert [g[:2] for g in app.got] == [(method, path), (method, path)]
        if path == "/redirect":
            assert "/ok" not in [g[1] for g in app.got]


def test_headers_body_and_credentials_arrive_the_same(servers):
    app, proxy = servers
    port = app.server_address[1]
    check = Check(url=f"http://us%40er:p%3Ass@127.0.0.1:{port}/echo", method="POST", body="b\u00e9",
                  headers={"X-Token": "t0k", "user-agent": "mine"})
    host, agentless = both(check)
    assert host[:2] == agentless[:2] == (201, "HTTP 201")
    sent = [g[2] for g in app.got]
    assert len(sent) == 2
    for headers in sent:
        # user:pass@ is Basic authorization (percent-decoded); the check's
        # own header wins over ours, whatever its case
        assert headers["authorization"] == "Basic dXNAZXI6cDpzcw=="
        assert headers["user-agent"] == "mine" and headers["host"] == f"127.0.0.1:{port}"
    assert sent[0] == sent[1]
    assert proxy.got == []


def test_json_sets_its_content_type_and_post_without_body_sends_zero_length(servers):
    app, _proxy = servers
    for check in (Check(url=app.url + "/ok", method="PUT", json={"a": [1, "\u00e9"]}),
                  Check(url=app.url + "/ok", method="POST")):
        host, agentless = both(check)
        assert host[:2] == agentless[:2] == (200, "HTTP 200")
    (_, _, h1, b1), (_, _, h2, b2), (_, _, h3, b3), (_, _, h4, b4) = app.got
    assert h1["content-type"] == h2["content-type"] == "application/json" and b1 == b2 == b'{"a": [1, "\\u00e9"]}'
    assert h3["content-length"] == h4["content-length"] == "0" and b3 == b4 == b""


def test_not_http_and_bad_urls_are_no_answer_on_both_sides():
    """A listener that does not speak HTTP, and URLs the check cannot send."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)

    def talk():
        conn, _ = silent.accept()
        conn.recv(4096)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n")
        conn.close()

    threading.Thread(target=talk, daemon=True).start()
    try:
        check = Check(url=f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=5)
        assert httpcheck.run(check)[:2] == (None, "no answer (not HTTP)")
    finally:
        silent.close()
    for url, why in (("ftp://127.0.0.1/", "unsupported URL"), ("http://127.0.0.1:99999/", None)):
        host, agentless = both(Check(url=url))
        assert host[0] is None and host[:2] == agentless[:2]
        if why:
            assert why in host[1]


def test_the_result_line_round_trips():
    for result in ((200, "HTTP 200", 0.0123), (None, "no answer (timed out after 5s)", 5.0)):
        status, detail, latency = httpcheck.parse_result(httpcheck.result_line(result))
        assert (status, detail) == result[:2] and latency == pytest.approx(result[2], abs=1e-6)


@pytest.fixture
def tls_server(tmp_path):
    """An https server on loopback with a self-signed certificate for
    127.0.0.1 (made by openssl(1)); yields (base URL, the certificate)."""
    import shutil
    import ssl
    import subprocess

    from tests.conftest import require

    require(bool(shutil.which("openssl")), "no openssl(1) to make a certificate (.ci/run installs it)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv = Recorder(App, tls=ctx)
    yield f"https://127.0.0.1:{srv.server_address[1]}", cert
    srv.shutdown()
    srv.server_close()


def test_https_verifies_the_certificate_the_same_on_both_sides(servers, tls_server, monkeypatch):
    """Unknown to the system's CAs: no answer on both sides, with the same
    reason. Trusted (SSL_CERT_FILE, which OpenSSL reads on both sides): the
    service's own answer, not through the proxy."""
    url, cert = tls_server
    _app, proxy = servers
    host, agentless = both(Check(url=url + "/fail", timeout=5))
    assert host[0] is None and "certificate verify failed" in host[1]
    assert host[:2] == agentless[:2]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    for path, status in (("/ok", 200), ("/fail", 500), ("/redirect", 302)):
        host, agentless = both(Check(url=url + path, timeout=5))
        assert host[:2] == agentless[:2] == (status, f"HTTP {status}")
    assert proxy.got == []


def test_a_malformed_spec_is_no_answer_and_the_next_check_still_runs(servers):
    """The agentless path reads its checks from stdin: a line that is not a
    check gives a `no answer` line in its place, never a crash that would
    lose the checks after it."""
    import subprocess
    import sys

    app, _proxy = servers
    good = '{"url": "%s/ok", "method": "GET", "headers": {}, "body": null, "timeout": 5}' % app.url
    broken_header = '{"url": "%s/ok", "headers": {"X": "a\\nb"}}' % app.url
    stdin = "\n".join(["not json", '{"url": null}', broken_header, good]) + "\n"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", open(httpcheck.__file__).read()], input=stdin,
                         capture_output=True, text=True, timeout=60)
    got = [httpcheck.parse_result(line) for line in out.stdout.splitlines()]
    assert len(got) == 4, out.stderr
    assert got[0][:2] == (None, "no answer (unreadable check)")
    assert got[1][0] is None and got[1][1].startswith("no answer (TypeError")
    assert got[2][:2] == (None, "no answer (a header holds a line break or a NUL)")
    assert got[3][:2] == (200, "HTTP 200")


@pytest.mark.parametrize("url, shown", [
    ("http://admin:S3CRET@127.0.0.1:1/health", "http://***@127.0.0.1:1/health"),
    ("https://tok3n@api.local/x?y=1", "https://***@api.local/x?y=1"),
    ("http://127.0.0.1:3000/health", "http://127.0.0.1:3000/health"),
    ("http://127.0.0.1:1/a@b", "http://127.0.0.1:1/a@b"),  # an @ in the path is no credential
])
def test_a_url_is_shown_without_its_credentials(url, shown):
    from fabops.host import httpcheck

    assert httpcheck.shown(url) == shown


def test_a_failed_gate_never_prints_the_checks_credentials():
    """The gate's message goes to history, the update log, notifications
    and the CI summary (review of #23: it printed user:pass@)."""
    from fabops.host.readiness import _Gate
    from fabops.inventory import Service

    check = Check(url=f"http://admin:S3CRET@127.0.0.1:{closed_port()}/h", timeout=0.2)
    svc = Service(name="api", manager="process", command="true", check=check)
    said = []

    class Up:
        def status(self, services):
            return {s.name: type("St", (), {"active": True, "pid": 1, "state": "active"})() for s in services}

    gate = _Gate(Up(), svc, 0.3, said.append, time.monotonic, time.sleep, LocalProbe())
    gate.pid = 1
    failed = gate.answering()
    assert failed is not None and "***@127.0.0.1" in failed.message and "S3CRET" not in failed.message, failed


def test_a_line_that_is_not_an_object_spoils_only_its_own_check(servers):
    app, _ = servers
    good = json.dumps({"url": app.url + "/ok", "method": "GET", "headers": {}, "body": None, "timeout": 2})
    r = subprocess.run([sys.executable, "-I", "-S", "-c", Path(httpcheck.__file__).read_text()],
                       input=("[1]\n" + good + "\n").encode() + b"\xff\n", capture_output=True, timeout=30)
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 0 and lines[0].startswith("0 ") and lines[1].startswith("200 "), (lines, r.stderr)


def test_a_plain_url_is_split_as_urlsplit_splits_it():
    """httpcheck._plain splits a plain URL without importing urllib.parse
    (a cron poll's 3-4 ms): every URL it takes, urlsplit splits the same;
    any other it leaves to urlsplit."""
    import random
    from urllib.parse import urlsplit

    urls = ["http://127.0.0.1:3013/health", "http://localhost/", "http://h", "http://h:0/x", "http://h:0080/p",
            "https://a.b.c:443/p?q=1#f", "http://h?x#y", "http://h#x?y", "http://h/a?b?c#d#e", "http://h/é?ü"]
    refused = ["http://h:65536/", "http://h:/x", "http://h:8a/", "http://h:²/", "HTTP://h/", "http://H/",
               "http://u:p@h/", "http://[::1]:80/", "ftp://h/", "http:/h", "http://", "http://:80/"]
    rng = random.Random(25)
    fuzz = ["http%s://%s" % (rng.choice(["", "s"]), "".join(rng.choice("hH:/?#@[]1.-x²é0") for _ in range(rng.randint(0, 12))))
            for _ in range(20000)]
    assert all(httpcheck._plain(u) is None for u in refused)
    taken = 0
    for url in urls + fuzz:
        parts = httpcheck._plain(url)
        if parts is None:
            continue
        taken += 1
        want = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port, parts.path, parts.query, parts.username, parts.password) == \
            (want.scheme, want.hostname, want.port, want.path, want.query, want.username, want.password), url
    assert taken > 1000


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "a.b.", "::1", "a" * 63 + ".b", "a" * 64, "a..b", ".a",
                                  "bücher.example"])
def test_a_host_name_reaches_getaddrinfo_as_the_idna_codec_makes_it(host):
    """httpcheck._name: the idna codec's own bytes for an ASCII name it
    takes (not importing it: a millisecond of every cron poll); the text
    itself otherwise, for the codec to encode or refuse as before."""
    name = httpcheck._name(host)
    if isinstance(name, bytes):
        assert name == host.encode("idna")
    else:
        assert name == host and (not host.isascii() or pytest.raises(UnicodeError, host.encode, "idna"))
