"""The README's first quick-start command, end to end: `inv demo`."""
import json
import sys

from tests.conftest import require, run_cli


def test_demo_runs_the_whole_loop(tmp_path, cpu_hog):
    """Under load: a fresh CI machine is often busy (two CPU hogs run)."""
    require(sys.platform.startswith("linux"), "the demo needs Linux")
    r = run_cli("demo", "--dir", str(tmp_path / "sandbox"), env={"COLUMNS": "80"}, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    closing = _closing(out)
    assert "`fabops demo --keep`" in closing[0] + closing[1], closing  # not `fabops demo ` / `--keep`
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


def _closing(out: str, columns: int = 80) -> list:
    """The lines from the demo's `N/N steps behaved as narrated` to the end,
    as a pipe gets them at `columns` (trial #7: the closing line went on at
    column 0 and broke inside a code span): none wider than the terminal
    (an emoji takes two columns), none ending in a space, and each
    continuation indented under the text of the line it continues."""
    from rich.cells import cell_len

    lines = out.rstrip("\n").splitlines()
    at = max(i for i, ln in enumerate(lines) if "steps behaved as narrated" in ln)
    closing = lines[at:]
    assert closing[0].startswith(("✅ ", "❌ ")), closing
    for ln in closing:
        assert cell_len(ln) <= columns and not ln.endswith(" "), closing
    starts = ("✅ ", "❌ ", "settings: ", "your own commits: ", "still running: ", "the app's port in hosts.yml")
    assert len(closing) > 1 and all(ln.startswith(starts) or ln.startswith("   ") for ln in closing), closing
    return closing


def _flat(lines) -> str:
    """Wrapped lines as the one line they were (the wrapper breaks at single
    spaces; a command too long for a line ends its lines in ` \\`; a path
    longer than the line is broken after a `/`, with no space)."""
    out = ""
    for ln in (ln.strip().removesuffix(" \\") for ln in lines):
        out += ("" if not out or out.endswith("/") else " ") + ln
    return out


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
        at = max(i for i, ln in enumerate(lines) if "steps behaved as narrated" in ln)
        at = next(i for i in range(at, len(lines)) if lines[i].startswith("still running: "))
        settings = _flat(lines[lines.index(next(ln for ln in lines if ln.startswith("settings: "))):][:3])
        assert settings.startswith(f"settings: `-i {box}/hosts.yml -H local` reads the sandbox's own copy"), settings
        commits = _flat(lines[lines.index(next(ln for ln in lines if ln.startswith("your own commits: "))):at])
        assert commits == (f"your own commits: `git commit` and `git push` in {box}/author (the sandbox's author "
                           "clone; it pushes to the sandbox's origin), then "
                           f"`fabops deploy -i {box}/hosts.yml -H local` deploys them"), commits
        last = _flat(lines[at:])
        assert last.startswith(f"still running: bot (pid {pid}, port "), last
        # by the pidfile: never stale
        assert last.endswith(f"; `fabops demo --dir {box} --stop` stops it, `fabops demo --dir {box}` starts over"), last
        port = yaml.safe_load((box / "hosts.yml").read_text())["hosts"]["local"]["services"][0]["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert json.loads(resp.read())["version"] == "2"

        r = run_cli("demo", "--dir", str(box), timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"stopped bot (pid {pid}), kept running by an earlier `demo --keep`" in r.stdout, r.stdout
        assert _started(pid) != started  # gone (or, in theory, a new process under that pid)
        # the port was free again, so the new sandbox listened where the kept app had
        assert yaml.safe_load((box / "hosts.yml").read_text())["hosts"]["local"]["services"][0]["port"] == port
        assert "the sample app is stopped" in r.stdout and "still running" not in r.stdout
    finally:
        if pid and started and _started(pid) == started:  # only the process this test started
            os.killpg(pid, signal.SIGKILL)


def test_demo_stop_stops_the_kept_app_and_keeps_the_sandbox(tmp_path):
    """#15: after `inv demo --keep`, the only way shown to stop the app was
    `inv demo`, which rebuilds the sandbox: the user's commits in its
    origin, its history and its .env backups were gone. `inv demo --stop`
    stops the app alone. Run as the README has it: in the directory of
    hosts.yml, no -i, no --dir, piped at 80 columns."""
    import os
    import signal
    import subprocess

    from fabops.demo import GIT_ENV, _free_port

    require(sys.platform.startswith("linux"), "the demo needs Linux")
    _root_copy(tmp_path, port=_free_port(0))
    box = tmp_path / ".fabops-demo"
    pidfile = box / "host" / "home" / "services" / "bot.pid"
    pid = started = None

    def demo(*args):
        return run_cli("demo", *args, cwd=tmp_path, env={"COLUMNS": "80"}, timeout=180)

    try:
        r = demo("--keep")
        pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
        started = _started(pid) if pid else None
        assert r.returncode == 0 and started, r.stdout + r.stderr
        closing = _closing(r.stdout)
        last = [i for i, ln in enumerate(closing) if ln.startswith("still running: ")][0]
        assert _flat(closing[last:]) == (f"still running: bot (pid {pid}, port {_port(box)}); "
                                         "`fabops demo --stop` stops it, `fabops demo` starts over"), closing
        for span in ("`fabops demo --stop`", "`fabops demo`", "`fabops deploy -H local`"):  # each whole on one line, to copy
            assert any(span in ln for ln in closing), (span, closing)
        commits = [i for i, ln in enumerate(closing) if ln.startswith("your own commits: ")][0]
        # which inventory -H local reads, and where the sandbox's settings change (#24's trial)
        settings = [i for i, ln in enumerate(closing) if ln.startswith("settings: ")][0]
        assert _flat(closing[settings:commits]) == (
            "settings: `-H local` reads the `local` host of hosts.yml; change the sandbox's settings there "
            "(.fabops-demo/hosts.yml is the demo's copy of it, written again by each `fabops demo`)"), closing
        assert _flat(closing[commits:last]).startswith(
            "your own commits: `git commit` and `git push` in .fabops-demo/author "), closing  # relative to here

        # the user's own commit in the demo's origin
        env = dict(os.environ, **GIT_ENV)
        (box / "author" / "MINE").write_text("mine\n")
        for git in (["add", "MINE"], ["commit", "-qm", "mine"], ["push", "-q", "origin", "main"]):
            subprocess.run(["git", *git], cwd=box / "author", env=env, check=True, capture_output=True)

        r = demo("--stop")
        assert r.returncode == 0, r.stdout + r.stderr
        said = [ln for ln in r.stdout.splitlines() if ln.strip()]
        assert _flat(said) == f"stopped: bot (pid {pid}), the sandbox's app (whichever run started it); " \
                              f"{box} is kept as it is", said
        assert all(ln.startswith("         ") for ln in said[1:]), said  # under the text after `stopped: `
        assert _started(pid) is None, f"pid {pid} still runs after --stop"  # stopped and waited for, not signalled
        # the sandbox as it was: the origin with the user's commit, the demo's runs
        log = subprocess.run(["git", "log", "--format=%s", "main"], cwd=box / "origin.git",
                             capture_output=True, text=True, check=True).stdout.splitlines()
        assert log == ["mine", "v3 crashes on boot", "v2", "v1"], log
        r = run_cli("history", "-i", str(tmp_path / "hosts.yml"), "-H", "local", "--json")
        assert r.returncode == 0 and len(json.loads(r.stdout)["hosts"]["local"]) == 3, r.stdout + r.stderr

        r = demo("--stop")  # nothing left: says so, and is no failure
        assert r.returncode == 0, r.stdout + r.stderr
        assert _flat(r.stdout.splitlines()) == f"nothing to stop: no demo app is running from {box}", r.stdout

        r = demo("--stop", "--keep")
        assert r.returncode == 64 and r.stdout == "", r.stdout + r.stderr
        assert r.stderr.startswith("fabops: --stop and --keep go in separate runs") and "Traceback" not in r.stderr
        assert (box / "origin.git").is_dir() and (box / "hosts.yml").is_file()
    finally:
        if pid and started and _started(pid) == started:  # only the process this test started
            os.killpg(pid, signal.SIGKILL)


def test_stop_with_no_sandbox_says_nothing_runs(tmp_path):
    """`inv demo --stop` before any demo: nothing to stop, exit 0, nothing built."""
    require(sys.platform.startswith("linux"), "the demo needs Linux")
    r = run_cli("demo", "--dir", str(tmp_path / "none"), "--stop")
    assert (r.returncode, r.stdout) == (0, f"nothing to stop: no demo app is running from {tmp_path / 'none'}\n"), \
        r.stdout + r.stderr
    assert not (tmp_path / "none").exists()


def test_the_closing_line_breaks_outside_code_spans():
    """Trial #7: the closing line went on at column 0 and broke inside
    `inv demo --keep`. It goes through _base.wrap: continuations under the
    text after the emoji (two columns wide), code spans whole; a code span
    longer than the line is broken at its spaces rather than run past the
    edge, each of its lines but the last ending in ` \\` (copyable)."""
    import io

    from rich.console import Console

    from fabops.tasks.demo import say_wrapped

    buf = io.StringIO()
    out = Console(file=buf, width=80, highlight=False, color_system=None)
    say_wrapped(out, "[bold]✅ 5/5 steps behaved as narrated in 123.4 s[/bold]; the sample app is stopped (`inv demo "
                     "--keep` leaves it running, for `inv monitor -H local` and the rest)", head=2)
    say_wrapped(out, "still running: bot; `inv demo --dir /a/very/long/path/to/a/sandbox/that/is/longer/than/the/"
                     "line --stop` stops it", head=len("still running: "))
    assert buf.getvalue().splitlines() == [
        "✅ 5/5 steps behaved as narrated in 123.4 s; the sample app is stopped",
        "   (`inv demo --keep` leaves it running, for `inv monitor -H local` and the",
        "   rest)",
        # the command stays copyable: each of its lines but the last ends in ` \`
        "still running: bot; `inv demo --dir \\",
        "               /a/very/long/path/to/a/sandbox/that/is/longer/than/the/line \\",
        "               --stop` stops it",
    ], buf.getvalue()


def _port(box) -> int:
    import yaml

    return yaml.safe_load((box / "hosts.yml").read_text())["hosts"]["local"]["services"][0]["port"]


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
                 "backup_dir": str(base / "host" / "backup"), "user": inventory.local_user()}
        assert ours == replace(theirs, **moved), (ours, theirs)
        # the file says the user it runs as, as `inv hosts` does (#24's trial: `ec2-user` from defaults, run as root)
        written = yaml.safe_load((base / "hosts.yml").read_text())["hosts"]["local"]
        assert written["user"] == ours.runs_as == inventory.local_user(), written
    assert theirs.user == "ec2-user"  # what the root hosts.yml's defaults lend it, and the demo's file no longer says
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
        # the command it says cron runs can be pasted as shown: whole, or its
        # lines joined by ` \` (#24's trial: the path was on the next line)
        shown = r.stdout.split("every 5 minutes on the host:\n")[1].split("\n  ✓")[0]
        assert shown.replace(" \\\n", " ").split() == [
            "fabops", "local-update", "--trigger", "cron", "-i", str(box / "hosts.yml")], shown
        # the way to stop it names this inventory: a bare `inv demo` here
        # would read another hosts.yml and build another sandbox
        last = _flat(r.stdout.split("steps behaved as narrated")[-1].splitlines()[1:])
        assert last.endswith(f"; `fabops demo -i {inv} --stop` stops it, `fabops demo -i {inv}` starts over"), last
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


def test_stop_names_the_agent_it_leaves_running(tmp_path, monkeypatch):
    """#24's trial: `demo --stop` left the per-user agent running (it ends
    after 10 idle minutes) and said nothing of it. The stop names it and
    how to end it now; with no agent answering, nothing is added."""
    import io
    import os
    import socket
    import tempfile

    from rich.console import Console

    from fabops.agent import where
    from fabops.tasks import demo

    short = tempfile.mkdtemp(dir="/tmp")  # a unix socket's path has ~100 characters
    monkeypatch.setattr(where, "socket_dir", lambda: short)
    monkeypatch.delenv("FABOPS_AGENT_IDLE", raising=False)

    def said() -> str:
        buf = io.StringIO()
        demo._stop(Console(file=buf, width=200), tmp_path / "none")
        return buf.getvalue()

    assert "still running" not in said()
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listening.bind(where.socket_path(short))
        listening.listen(1)
        text = said()
    finally:
        listening.close()
        os.unlink(where.socket_path(short))
        os.rmdir(short)
    assert text.startswith("nothing to stop: "), text
    assert ("still running: your fabops agent (docs/agent.md); it ends by itself after 10 minutes without a "
            "command, `fabops agent stop` ends it now") in text, text
