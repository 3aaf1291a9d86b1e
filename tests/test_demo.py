"""The README's first quick-start command, end to end: `inv demo`."""
import sys

from tests.conftest import require, run_cli


def test_demo_runs_the_whole_loop(tmp_path, cpu_hog):
    """Under load: a fresh CI machine is often busy (two CPU hogs run)."""
    require(sys.platform.startswith("linux"), "the demo needs Linux")
    r = run_cli("demo", "--dir", str(tmp_path / "sandbox"), timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for marker in ("1. Set up and deploy v1", "2. The dashboard", "3. Push v2", "4. Push a crash-on-boot v3",
                   "5. History, status", "rolled_back", "5/5 steps behaved as narrated", "the sample app is stopped"):
        assert marker in out, marker
    assert "Traceback" not in r.stderr
    # a first deploy says so (not "X -> X" from where the checkout was), the
    # cron run has a real actor, and the held-back commit is told once
    assert "deployed: first deploy, at " in out, out
    assert "unknown" not in out and "state stale" not in out, out
    last = out.split("5. History, status")[1]
    assert "also says" not in last and last.count("updates failing since") <= 2, last
    # nothing left running
    import os

    pids = [p for p in (tmp_path / "sandbox" / "host" / "home" / "services").glob("*.pid")]
    for pidfile in pids:
        pid = int(pidfile.read_text().split()[0])
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def _started(pid: int):
    """The process's start time (/proc/PID/stat field 22), None once it is
    gone or a zombie: tells a recycled pid from the one the demo started."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def test_keep_says_how_to_stop_the_app_and_the_next_demo_stops_it(tmp_path):
    """#24: `inv demo` after `--keep` deleted the sandbox and its pidfile and
    left the kept app serving from a deleted directory on the demo's port."""
    import json
    import os
    import signal
    import urllib.request

    import yaml

    require(sys.platform.startswith("linux"), "the demo needs Linux")
    box = tmp_path / "sandbox"
    r = run_cli("demo", "--dir", str(box), "--keep", timeout=180)
    pidfile = box / "host" / "home" / "services" / "bot.pid"
    pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
    started = _started(pid) if pid else None
    try:
        assert r.returncode == 0 and pid and started, r.stdout + r.stderr
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        assert "steps behaved as narrated" in lines[-2], lines[-2:]
        assert lines[-1].startswith(f"still running: bot (pid {pid}, port "), lines[-1]
        assert lines[-1].endswith(f"; stop: `inv demo --dir {box}`"), lines[-1]  # by the pidfile: never stale
        port = yaml.safe_load((box / "hosts.yml").read_text())["hosts"]["local"]["services"][0]["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert json.loads(resp.read())["version"] == "2"

        r = run_cli("demo", "--dir", str(box), timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"stopped bot (pid {pid}), kept running by an earlier `inv demo --keep`" in r.stdout, r.stdout
        assert _started(pid) != started  # gone (or, in theory, a new process under that pid)
        # the port was free again, so the new sandbox listened where the kept app had
        assert yaml.safe_load((box / "hosts.yml").read_text())["hosts"]["local"]["services"][0]["port"] == port
        assert "the sample app is stopped" in r.stdout and "still running" not in r.stdout
    finally:
        if pid and started and _started(pid) == started:  # only the process this test started
            os.killpg(pid, signal.SIGKILL)


def _root_copy(tmp_path, port=None):
    """The repository's hosts.yml in a directory of its own (its `local`
    sandbox is then tmp_path/.fabops-demo, never the checkout's), on `port`."""
    import re

    from tests.conftest import ROOT

    text = (ROOT / "hosts.yml").read_text()
    if port:
        text = re.sub(r"\b3013\b", str(port), text)
    (tmp_path / "hosts.yml").write_text(text)
    return tmp_path / "hosts.yml"


def test_the_demos_inventory_is_hosts_yml_s_local_host(tmp_path):
    """#24: the root hosts.yml's `local` and the demo's own hosts.yml
    differed (a 2 s watch and logs in host/log/ in one, a 30 s watch and
    home's logs in the other). The demo's is now that entry, with its paths
    written relative to the sandbox: loaded, the two are one Host."""
    from dataclasses import replace

    import yaml

    from fabops import inventory
    from fabops.demo import DEFAULT_DIR, local_entry, sandbox_entry

    root = _root_copy(tmp_path)
    raw = local_entry(yaml.safe_load(root.read_text()))
    theirs = inventory.load(str(root)).hosts["local"]
    port = theirs.services[0].port
    for base in (tmp_path / DEFAULT_DIR, tmp_path / "elsewhere"):  # the default and --dir
        base.mkdir()
        (base / "hosts.yml").write_text(yaml.safe_dump({"hosts": {"local": sandbox_entry(raw, tmp_path, port)}}))
        ours = inventory.load(str(base / "hosts.yml")).hosts["local"]
        moved = {"app": replace(theirs.app, path=str(base / "host" / "app")), "home": str(base / "host" / "home"),
                 "backup_dir": str(base / "host" / "backup")}
        assert ours == replace(theirs, **moved), (ours, theirs)
    assert theirs.services[0].watch == 2.0 and not theirs.logs  # what the demo showed is what deploy -H local does


def test_after_demo_keep_deploy_and_logs_on_local_see_the_demos_runs(tmp_path):
    """#24: after `inv demo --keep`, `inv deploy -H local` took 32 s (the
    root entry's 30 s watch) and `inv logs -H local --source update` showed
    none of the demo's runs (they were logged in host/log/). And the demo
    narrated step 3 as cron's run but recorded it as `manual`."""
    import json
    import os
    import signal
    import subprocess
    import time

    from fabops.demo import GIT_ENV, _free_port

    require(sys.platform.startswith("linux"), "the demo needs Linux")
    inv = str(_root_copy(tmp_path, port=_free_port(0)))
    box = tmp_path / ".fabops-demo"
    pidfile = box / "host" / "home" / "services" / "bot.pid"

    def running_pid():
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    try:
        r = run_cli("demo", "-i", inv, "--keep", timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "fabops local-update --trigger cron -i " in r.stdout, r.stdout
        # the way to stop it names this inventory: a bare `inv demo` here
        # would read another hosts.yml and build another sandbox
        assert r.stdout.rstrip().endswith(f"; stop: `inv demo -i {inv}`"), r.stdout[-300:]
        runs = json.loads(run_cli("history", "-i", inv, "-H", "local", "--json").stdout)["hosts"]["local"]
        assert [(x["trigger"], x["result"]) for x in runs] == [
            ("deploy", "deployed"), ("cron", "deployed"), ("deploy", "rolled_back")], runs

        # a good v4 on the demo's origin, deployed through hosts.yml's `local`
        author = box / "author"
        (author / "BEHAVIOUR").unlink()
        (author / "VERSION").write_text("4\n")
        env = dict(os.environ, **GIT_ENV)
        for git in (["commit", "-qam", "v4"], ["push", "-q", "origin", "main"]):
            subprocess.run(["git", *git], cwd=author, env=env, check=True, capture_output=True)
        started = time.monotonic()
        r = run_cli("deploy", "-i", inv, "-H", "local", env={"CI": ""}, timeout=120)
        took = time.monotonic() - started
        assert r.returncode == 0, r.stdout + r.stderr
        assert took < 25, f"deploy -H local took {took:.1f} s: not the demo's 2 s watch"

        r = run_cli("logs", "-i", inv, "-H", "local", "--source", "update", "-n", "20")
        assert r.returncode == 0, r.stdout + r.stderr
        for seen in ('[deploy demo@', '"v1"', '[cron ', '"v2"', 'ROLLED_BACK', '"v4"'):
            assert seen in r.stdout, (seen, r.stdout)
    finally:
        # the app --keep left running (restarted by the deploy): its process
        # group, by the pidfile, pass or fail
        pid = running_pid()
        if pid and os.path.exists(f"/proc/{pid}"):
            os.killpg(pid, signal.SIGKILL)


def test_the_demo_refuses_a_local_path_outside_its_sandbox(tmp_path):
    """The demo deletes and rebuilds its sandbox: a `local` entry pointing
    elsewhere is refused, never rebased or written."""
    import pytest

    from fabops.demo import sandbox_entry
    from fabops.errors import UsageError

    with pytest.raises(UsageError, match=r"hosts.local.home: '~/.fabops/app' is outside .fabops-demo/"):
        sandbox_entry({"app": {"path": ".fabops-demo/host/app"}, "home": "~/.fabops/app"}, tmp_path, 3013)
