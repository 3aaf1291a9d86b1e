"""Secrets stay out of argv (#22, docs/security.md): an HTTP check's headers
and body, host.yml and the crontab reach the host on a command's stdin,
never in a command line, which `ps` shows every user of the host.

A real HTTP server on loopback records what arrives, byte for byte; `ps -ww
-eo args=` snapshots taken in a loop while fabops works over a real sshd
(the ssh tier) prove that a marker secret is in no process's argv. Each
snapshot loop is bounded and stopped on the way out, pass or fail; a
negative control shows that the loop does see a secret put in argv."""
import http.server
import json
import os
import shutil
import stat
import subprocess
import sys
import threading

import pytest
import yaml

from fabops import cron, deploy, inventory
from fabops.connection import close_quietly, connect
from fabops.inventory import Check
from fabops.checks import FROM_STDIN, RemoteProbe, http_check_cmd, http_check_input, parse_http_results
from fabops.host.readiness import LocalProbe
from fabops.shell import raw, sh
from fabops.target import Target
from tests import test_target
from tests.conftest import write_inventory
from tests.test_target import ssh_target

target = test_target.target  # the fixture: this machine, and a real sshd

MARK = "fabops-marker-s3cr3t-91c4"


class Recorder:
    """An HTTP server on loopback that records every request as (method,
    headers, body bytes) and answers 200. `hold`, when set, is called before
    the answer: the client (the check's python3) stays alive until it returns."""

    def __init__(self):
        self.got = []
        self.hold = None
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def _record(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.got.append((self.command, dict(self.headers), body))
                if rec.hold:
                    rec.hold()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _record

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/check"

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


class ArgvWatch:
    """`ps -ww -eo args=` in a loop on a thread while the block runs: every
    line holding a marker is kept in `hits`. At most `limit` snapshots; the
    loop ends when the block does, on failure too."""

    def __init__(self, *markers: str, limit: int = 5000):
        self.markers = markers
        self.limit = limit
        self.count = 0
        self.hits = []
        self.stop = threading.Event()
        self.taken = threading.Condition()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ArgvWatch":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(60)

    def _loop(self) -> None:
        while not self.stop.is_set() and self.count < self.limit:
            out = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, encoding="utf-8",
                                 errors="replace", timeout=60).stdout
            self.hits += [line for line in out.splitlines() if any(m in line for m in self.markers)]
            with self.taken:
                self.count += 1
                self.taken.notify_all()

    def wait_snapshots(self, n: int = 3) -> None:
        """Block until `n` more snapshots are taken (the recorder's hold:
        the client is alive through them); bounded by the snapshot limit."""
        with self.taken:
            goal = self.count + n
            self.taken.wait_for(lambda: self.count >= min(goal, self.limit) or self.stop.is_set(), timeout=60)


def no_curl_path(tmp_path) -> str:
    """A PATH with sh and python3 but no curl: the check needs no curl."""
    bindir = tmp_path / "nocurl"
    bindir.mkdir(exist_ok=True)
    # the system's python3: the test host's /root (pyenv's, perhaps) is a private tmpfs
    python3 = shutil.which("python3", path="/usr/bin:/bin") or os.path.realpath(sys.executable)
    for tool, real in (("python3", python3), ("sh", shutil.which("sh"))):
        if not (bindir / tool).exists():
            os.symlink(real, bindir / tool)
    return str(bindir)


BODIES = ["@/etc/passwd", "nul\x00byte", "h\u00e9llo \u20ac\U0001f600\nline two\r\n\t\"q\" 'sq' \\ \\n $(id) `id`\n\n"]


def run_check(t: Target, check: Check, tool: str, tmp_path):
    if tool == "host":  # the pipeline's own call, in this process
        return LocalProbe().http(check)[0]
    if tool == "agentless":
        return RemoteProbe(t).http(check)[0]
    r = t.run(http_check_cmd(FROM_STDIN), "the check", stdin=http_check_input(check),
              env={"PATH": no_curl_path(tmp_path)})
    return parse_http_results(r.stdout, 1)[0][0]


@pytest.mark.parametrize("tool", ["agentless", "agentless without curl", "host"])
def test_a_checks_headers_and_body_arrive_byte_for_byte(target, tool, recorder, tmp_path):
    """A body starting with @ is sent as it is (never a file read), unicode,
    NUL, quotes and newlines arrive unchanged, and so do the headers, from
    the one check whether the pipeline calls it on the host or the
    agentless path runs it (here and over SSH)."""
    if tool == "host" and not target.is_local:
        pytest.skip("the host side runs in process: once, on this machine")
    headers = {"Authorization": f"Bearer {MARK}", "X-Quoted": 'a "b" \\ c \' $(id)'}
    for body in BODIES:
        check = Check(url=recorder.url, method="POST", body=body, headers=headers)
        assert run_check(target, check, tool, tmp_path) == 200
        method, got_headers, got_body = recorder.got[-1]
        assert (method, got_body) == ("POST", body.encode("utf-8"))
        assert {k: got_headers.get(k) for k in headers} == headers
    doc = {"text": "caf\u00e9 \"x\"", "n": [1, 2]}
    assert run_check(target, Check(url=recorder.url, method="PUT", json=doc), tool, tmp_path) == 200
    method, got_headers, got_body = recorder.got[-1]
    assert (method, json.loads(got_body), got_headers["Content-Type"]) == ("PUT", doc, "application/json")
    assert run_check(target, Check(url=recorder.url), tool, tmp_path) == 200  # nothing to send
    assert recorder.got[-1][0] == "GET" and recorder.got[-1][2] == b""


def test_a_check_needs_no_secret_in_its_command():
    check = Check(url="http://127.0.0.1:9/", method="POST", body=MARK, headers={"Authorization": MARK})
    # The command holds no part of any check: they all come on stdin, as
    # ASCII JSON (a NUL or a line break in a body is escaped, never raw).
    assert http_check_cmd(FROM_STDIN) == http_check_cmd(FROM_STDIN, 1)
    assert MARK not in http_check_cmd(FROM_STDIN) and MARK in http_check_input(check)
    assert check.url not in str(http_check_cmd(FROM_STDIN))  # a URL may carry user:pass@ or a token
    text = http_check_input([check, Check(url="http://127.0.0.1:9/", body="nul\x00\nline")])
    assert text.isascii() and "\x00" not in text and text.count("\n") == 2


@pytest.fixture
def conn(ssh_host, tmp_path):
    """A Target on the loopback sshd, for a host whose hosts.yml entry holds
    no secret (so nothing but the call under test could put one in argv)."""
    with ssh_target(ssh_host, tmp_path / "plain.yml") as t:
        yield t


def secret_host(ssh_host, tmp_path, **extra):
    """The same host with a secret env value and a check's token."""
    svc = {"name": "bot", "manager": "process", "command": "true",
           "check": {"url": "http://127.0.0.1:9/health", "headers": {"Authorization": f"Bearer {MARK}"}}}
    entry = ssh_host.inventory_entry(env={"API_TOKEN": MARK + "-env"}, services=[svc], **extra)
    return inventory.load(str(write_inventory(tmp_path / "secret.yml", {"h1": entry}))).hosts["h1"]


@pytest.mark.ssh
def test_no_secret_in_argv_while_a_check_runs_over_ssh(conn, recorder):
    check = Check(url=recorder.url, method="POST", body=MARK + "-body", headers={"Authorization": f"Bearer {MARK}"})
    with ArgvWatch(MARK) as watch:
        recorder.hold = watch.wait_snapshots  # the check's python3 is alive through three snapshots
        assert RemoteProbe(conn).http(check)[0] == 200
    assert watch.count >= 3 and watch.hits == []
    assert recorder.got[-1][1]["Authorization"] == f"Bearer {MARK}"
    # The negative control: the same header in curl's argv is seen.
    with ArgvWatch(MARK) as control:
        recorder.hold = control.wait_snapshots
        conn.run(sh("curl -s -o /dev/null -H {h} {url}", h=f"Authorization: Bearer {MARK}", url=recorder.url))
    assert any("curl" in line for line in control.hits), control.count


@pytest.mark.ssh
def test_no_secret_in_argv_while_monitor_checks_over_ssh(ssh_host, conn, recorder, tmp_path):
    from fabops import monitor

    svc = {"name": "bot", "manager": "process", "command": "true",
           "check": {"url": recorder.url, "method": "POST", "body": "@/etc/passwd " + MARK,
                     "headers": {"Authorization": f"Bearer {MARK}"}}}
    svc2 = {"name": "api", "manager": "process", "command": "true",
            "check": {"url": recorder.url, "headers": {"X-Second": MARK + "-2"}}}
    entry = ssh_host.inventory_entry(services=[svc, svc2])
    host = inventory.load(str(write_inventory(tmp_path / "mon.yml", {"h1": entry}))).hosts["h1"]
    assert MARK not in monitor.monitor_script(host)
    with ArgvWatch(MARK) as watch:
        recorder.hold = watch.wait_snapshots
        facts = monitor.gather(conn.c, host)
    assert watch.count >= 3 and watch.hits == []
    assert facts is not None
    (m1, h1, b1), (m2, h2, b2) = recorder.got[-2:]
    assert (m1, b1, h1["Authorization"]) == ("POST", ("@/etc/passwd " + MARK).encode(), f"Bearer {MARK}")
    assert (m2, b2, h2["X-Second"]) == ("GET", b"", MARK + "-2") and "Authorization" not in h2


@pytest.mark.ssh
def test_host_yml_goes_on_stdin_and_stays_private(ssh_host, conn, tmp_path):
    host = secret_host(ssh_host, tmp_path)
    text = deploy.host_yml(host)
    assert MARK in text  # the env value and the token are in the file...
    config = host.paths.run_file("r1", "host.yml")
    cmd = deploy.start_detached_cmd(host, "r1", ["true"], config)
    assert MARK not in cmd  # ...never in the command line the host's shell gets
    with ArgvWatch(MARK) as watch:
        conn.run(cmd, "starting the run", stdin=text)
    assert watch.count >= 1 and watch.hits == []
    written = ssh_host.path(config)
    assert written.read_text() == text
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(ssh_host.path(host.home).stat().st_mode) == 0o700


@pytest.mark.ssh
def test_the_crontab_goes_on_stdin(ssh_host, conn, tmp_path):
    host = secret_host(ssh_host, tmp_path)
    table = "# kept as it is\n" + cron.render_block(host).replace("/usr/local/bin", f"/opt/{MARK}/bin")
    assert MARK in table and MARK not in cron.WRITE
    with ArgvWatch(MARK) as watch:
        cron.write_crontab(conn, table, "h1")
    assert watch.count >= 1 and watch.hits == []
    assert cron.read_crontab(conn) == table


@pytest.mark.ssh
def test_the_inventorys_env_is_not_in_any_ssh_commands_argv(ssh_host, tmp_path):
    """The shell that runs a command over SSH is alive while its `ps` runs
    (`; true` after it: bash would exec a last command in its place), so
    the remote ps sees that shell's own argv: no timing involved."""
    from fabops.setup import put_file
    from fabops.shell import env_file_text

    host = secret_host(ssh_host, tmp_path)
    cxn = connect(host, inventory.load(str(tmp_path / "secret.yml")))
    try:
        t = Target.of(cxn, host)
        put_file(t, host, host.paths.env_sh, env_file_text(host.env), mode="0600", root=False)
        out = t.run(raw("ps -ww -eo args=; true"), "listing the host's processes").stdout
        key = next(iter(host.env))
        assert MARK in t.run(raw(f'printf %s "${key}"'), "the env still reaches the command").stdout
    finally:
        close_quietly(cxn)
    assert MARK not in out


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.ssh
def test_no_secret_in_argv_during_a_deploy_and_the_home_is_0700_again(ssh_host, tmp_path, deploy_env):
    """A whole `fabops deploy` over SSH (install, host.yml, the detached run,
    its checks) with a check token: no snapshot holds it. Then fabops' home,
    opened to 0755 by hand, is 0700 again after the next deploy."""
    from tests.harness.apps import RemoteApp

    app = RemoteApp(ssh_host, tmp_path)
    data = yaml.safe_load(app.inventory.read_text())
    data["hosts"]["h1"]["services"][0]["check"]["headers"] = {"Authorization": f"Bearer {MARK}"}
    app.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    with ArgvWatch(MARK, limit=20000) as watch:
        code, res = app.deploy_json()
    assert code == 0, res
    assert watch.count >= 1 and watch.hits == [], watch.hits
    home = ssh_host.path("~/.fabops/app")
    assert mode(home) == 0o700 and mode(home.parent) == 0o700  # ~/.fabops too: made under umask 077
    configs = list((home / "runs").glob("*.host.yml"))
    assert configs and all(mode(c) == 0o600 and MARK in c.read_text() for c in configs)
    os.chmod(home, 0o755)
    os.chmod(home.parent, 0o755)  # ~/.fabops, as an old release left it
    code, res = app.deploy_json()
    assert (code, res["result"]) == (0, "noop"), res
    assert mode(home) == 0o700 and mode(home.parent) == 0o700


def test_the_host_side_sets_its_home_to_0700_on_every_run(tmp_path):
    from fabops.host.files import ensure_home

    home = tmp_path / ".fabops" / "app"
    ensure_home(str(home))
    assert mode(home) == 0o700
    os.chmod(home, 0o755)
    os.chmod(home.parent, 0o755)
    ensure_home(str(home))  # what every pipeline run does first
    assert mode(home) == 0o700 and mode(home.parent) == 0o700
    elsewhere = tmp_path / "srv" / "fabops-home"
    elsewhere.parent.mkdir()
    os.chmod(elsewhere.parent, 0o755)
    ensure_home(str(elsewhere))
    assert mode(elsewhere) == 0o700 and mode(elsewhere.parent) == 0o755  # not ours: left alone


def test_env_set_push_and_unset_put_no_value_in_any_argv(sandbox, tmp_path):
    """#29, secrets without an editor: env-set's value (piped, as from a
    prompt) and env-push's file reach the host's .env on a command's stdin
    only; `ps` snapshots all through the runs (a restart and its gate) see
    no value in any process's argv, and the negative control shows the
    loop sees one that is there."""
    from tests.test_env_set import cli

    value, pushed = MARK + "-env-set", MARK + "-env-push"
    local = tmp_path / "local.env"
    local.write_text(f"PUSHED={pushed}\n")
    inv = str(sandbox.inventory)
    sandbox.result()  # deployed: bot runs, so each change restarts it
    with ArgvWatch(value, pushed) as watch:
        # the negative control: a value that is in an argv is seen
        control = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", value])
        try:
            watch.wait_snapshots(2)
        finally:
            control.kill()
            control.wait()
        seen = list(watch.hits)
        watch.hits.clear()
        runs = [cli("env-set", "SET_KEY", "-i", inv, stdin=value + "\n"), cli("env-push", str(local), "-i", inv),
                cli("env-unset", "SET_KEY", "-i", inv)]
    assert seen, "the snapshot loop did not see a value that was in argv"
    assert all(r.returncode == 0 for r in runs), [r.stdout + r.stderr for r in runs]
    assert watch.count > 5 and not watch.hits, watch.hits
    assert not any(value in r.stdout + r.stderr or pushed in r.stdout + r.stderr for r in runs)
    assert f"PUSHED={pushed}" in (sandbox.app / ".env").read_text()
    # each run is in the host's history and update log (#29), key names only: no value in any file
    # there (the .env's backups, outside the home, hold them by design)
    assert [r["trigger"] for r in sandbox.history()[-3:]] == ["env-set", "env-push", "env-unset"]
    for f in [*sandbox.home.rglob("*"), *(sandbox.home.parent / "log").rglob("*")]:
        held = f.read_bytes() if f.is_file() else b""
        assert value.encode() not in held and pushed.encode() not in held, f
