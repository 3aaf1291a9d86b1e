"""A deploy that tells the truth, on the booted find-to-do container (real
systemd with Restart=on-failure, journald, cron's own command line, sudo).

Each case that once left the host down or stuck while fabops said "deployed"
or nothing at all: a late crash, a silent preflight abort, fabops' own files
jamming the host, a network blip marking a good commit bad, file modes that
depend on who deployed, a deterministic HTTP 500, and commit subjects."""
import json

import pytest
import yaml

from tests.harness.sandbox import Origin
from tests.harness.webhook import Hook
from tests.test_systemd_tier import UNIT, base, bot_service, box, fab, find_to_do_alias, on_host  # noqa: F401 - fixtures

# generous hang guards: the first test boots the container and sets it up
pytestmark = [pytest.mark.systemd, pytest.mark.timeout(900)]
APP = "~/voice-meeting-bot"
HOME = "~/.fabops/voice-meeting-bot"
CRONTAB = "~/crontab.as-setup-wrote-it"
# The watch of every deploy here: a good commit waits it out, so 2 s (as in
# tests/test_systemd_tier.py) and not 8 s, which cost the file about a
# minute; the late crash sets a window wide enough for its 3 s (with_watch).
WATCH = "2s"


def with_watch(inv, watch: str) -> None:
    """The host fixture's hosts.yml with another watch window."""
    data = yaml.safe_load(inv.read_text())
    data["hosts"]["find-to-do"]["services"][0]["watch"] = watch
    inv.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    return Origin(tmp_path_factory.mktemp("truthful-origin"))


@pytest.fixture
def host(box, origin, client_key, isolated_home, deploy_env, tmp_path):
    """The alias, a hosts.yml with a 2 s watch (every good deploy waits it
    out; the cases that need a longer one set it), and a webhook endpoint."""
    import os
    from pathlib import Path

    find_to_do_alias(box, client_key, isolated_home)
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": "/home/ec2-user/voice-meeting-bot"},
        "services": [bot_service("40s", WATCH)],
        "deps": [{"when": ["requirements.txt", "install-deps.sh"], "run": "sh install-deps.sh"}],
        "env_template": ".env.example",
        "env_file": ".env",
        "logs": {"update": "/var/log/voice-meeting-bot-update.log", "health": "/var/log/voice-meeting-bot-health.log"},
    }}}, sort_keys=False))
    if on_host("test -d ~/voice-meeting-bot", check=False).returncode != 0:
        on_host("git clone --quiet /srv/origin.git ~/voice-meeting-bot && "
                "printf 'DISCORD_TOKEN=s3cr3t-marker\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")
        r = fab(inv, "setup", "--yes", "--offline")
        assert r.returncode in (0, 1), r.stdout + r.stderr
    # The crontab setup installed is kept aside and the cron daemon runs on:
    # each test runs cron's line itself (cron_job, cron), when it means to.
    # Left installed, the host's own */5 update or */10 health fired inside
    # a test now and then, adding a run the test did not make.
    on_host(f"[ -f {CRONTAB} ] || {{ crontab -l > {CRONTAB} && crontab -r; }}")
    hook = Hook(box.address.rsplit(".", 1)[0] + ".1")  # our side of the veth, as Discord would be
    on_host(f"umask 077; echo FABOPS_DISCORD_WEBHOOK={hook.url} > {HOME}/notify.env")
    assert Path(os.environ["HOME"]).exists()
    yield inv, hook
    hook.close()
    # A test that failed mid-deploy may leave the host watching under its
    # lock: wait for that run to end, so one failure does not cascade into
    # LOCKED in every test after it.
    on_host(f"for i in $(seq 1 120); do flock -n {HOME}/lock true 2>/dev/null && break; sleep 0.5; done; "
            f"rm -f {HOME}/notify.env", check=False)


def deploy(inv, *args):
    r = fab(inv, "deploy", "--json", *args)
    try:
        return r.returncode, json.loads(r.stdout)["hosts"]["find-to-do"]
    except (ValueError, KeyError):
        raise AssertionError(f"rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")


def cron(check=False):
    """What the cron line runs on the host (the host's own fabops and host.yml)."""
    r = on_host(f"cd && {HOME}/venv/bin/fabops local-update -i {HOME}/host.yml --json", check=check)
    return r.returncode, json.loads(r.stdout)["hosts"]["find-to-do"]


CRON_JOB = r"""
line=$(grep -F ' local-update ' ~/crontab.as-setup-wrote-it | head -n 1)
[ -n "$line" ] || { echo "no local-update line in the crontab setup wrote" >&2; exit 99; }
cmd=$(printf '%s\n' "$line" | cut -d' ' -f6- | sed -e 's/\\%/%/g' -e 's/--splay [0-9]*/--splay 0/')
mask=
for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" = cron ] && mask=$(sed -n 's/^Umask:[[:space:]]*//p' "$p/status") && break
done
[ -n "$mask" ] || { echo "no cron daemon running" >&2; exit 99; }
umask "$mask"
exec env -i HOME="$HOME" LOGNAME="$(id -un)" SHELL=/bin/sh PATH=/usr/bin:/bin /bin/sh -c "$cmd"
"""


def cron_job():
    """The update line of the crontab `setup` installed (kept aside by the
    `host` fixture), run the way cron runs it: the cron daemon's own umask, an environment of HOME, LOGNAME, SHELL
    and PATH only, /bin/sh. Only `--splay` is set to 0 (a random delay would
    only slow the test). Returns the history record it wrote."""
    r = on_host(CRON_JOB, check=False)
    assert r.returncode in (0, 1, 2), r.stdout + r.stderr
    return json.loads(on_host(f"tail -n 1 {HOME}/history.jsonl").stdout)


def version():
    out = on_host("curl -s -X POST http://127.0.0.1:3003/webhook/meeting-completed", check=False).stdout
    return json.loads(out)["version"] if out.strip() else None


def history():
    return [json.loads(x) for x in on_host(f"cat {HOME}/history.jsonl").stdout.splitlines()]


def monitor(inv):
    r = fab(inv, "monitor", "--json")
    data = json.loads(r.stdout)["hosts"]["find-to-do"]
    return r.returncode, [f["message"] for f in data["findings"]]


def test_first_deploy_and_file_modes_for_deploy_and_cron(host, origin):
    inv, _ = host
    code, res = deploy(inv, "--offline")
    assert code == 0 and res["result"] == "deployed", res
    assert any(s["name"] == "watch" and s["ok"] for s in res["steps"]), res["steps"]
    # a deploy from the laptop: the host's normal umask, not fabops' 077
    origin.push("v2 new files", {"VERSION": "2\n", "requirements.txt": "http-server==2\n", "docs/new.txt": "x\n"})
    code, res = deploy(inv)
    assert code == 0, res
    modes = on_host(f"cd {APP} && stat -c '%a %n' docs/new.txt vendor/installed.txt app.py").stdout.split("\n")
    assert [m.split()[0] for m in modes if m] == ["644", "644", "644"], modes
    # and cron's own job, run as cron runs it, makes the same modes
    origin.push("v3 more files", {"VERSION": "3\n", "requirements.txt": "http-server==3\n", "docs/cron.txt": "y\n"})
    rec = cron_job()
    assert rec["result"] == "deployed" and rec["trigger"] == "cron", rec
    modes = on_host(f"cd {APP} && stat -c '%a' docs/cron.txt vendor/installed.txt").stdout.split()
    assert modes == ["644", "644"], modes
    assert on_host(f"stat -c %a {HOME} {HOME}/state.json").stdout.split() == ["700", "600"]


def answering_version(within: float = 60.0):
    """The bot's version once it answers (polled: the host's own cron may be
    restarting it when a test starts), with the deployed commit, for the
    failure message."""
    import time

    deadline = time.monotonic() + within
    while True:
        got = version()
        if got is not None or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_a_late_crash_is_rolled_back_not_reported_deployed(host, origin):
    """The bot answers its first checks, then exits 3 s after start;
    systemd restarts it. The watch after the gate catches it."""
    inv, hook = host
    good = answering_version()
    assert good is not None, on_host(f"cat {HOME}/state.json; tail -n 3 {HOME}/history.jsonl", check=False).stdout
    bad = origin.push("v4 dies after three seconds", {"VERSION": "4\n", "BEHAVIOUR": "crash-after 3\n"})
    with_watch(inv, "8s")  # past the crash 3 s after start, and systemd's restart of it
    code, res = deploy(inv)
    with_watch(inv, WATCH)
    assert (code, res["result"]) == (2, "rolled_back"), res
    watch = [s for s in res["steps"] if s["name"] == "watch"]
    assert watch and not watch[0]["ok"] and ("died" in watch[0]["message"] or "restarted" in watch[0]["message"])
    assert answering_version() == good, history()[-3:]
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    last = history()[-1]
    assert last["result"] == "rolled_back" and last["to"] == bad and last["subject"] == "v4 dies after three seconds"
    assert len(hook.texts("rolled back")) == 1, hook.got
    code, res = cron()  # cron does not retry it
    assert res["result"] == "skipped_bad"
    assert monitor(inv)[0] in (0, 1)
    origin.push("v5 fixed", {"VERSION": "5\n", "BEHAVIOUR": "ok\n"})
    assert deploy(inv)[0] == 0


def test_health_inside_the_watch_window_leaves_the_bad_commit_to_the_rollback(host, origin):
    """`deploy --no-watch` returns at the gate; the host keeps watching under
    the lock. A commit that passes its gate and then answers 500 is seen by
    cron's `health --fix` inside that window: it must not restart it (that
    would hide the bad commit in a restart loop); it reports the run in
    progress (exit 3), and the watch rolls the commit back."""
    import time

    inv, hook = host
    data = yaml.safe_load(inv.read_text())
    data["hosts"]["find-to-do"]["services"][0]["watch"] = "25s"  # room for two 5 s HTTP checks to miss
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    assert deploy(inv, "--offline")[0] == 0  # a good commit serving (a no-op after the other tests)
    good = version()
    bad = origin.push("v6 sick after two seconds", {"VERSION": "6\n", "BEHAVIOUR": "sick-after 2\n"})
    code, res = deploy(inv, "--no-watch")
    assert code == 0 and res["to"] == bad, res
    health = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        last = history()[-1]
        if last.get("to") == bad and last["result"] != "deployed":
            break
        status = on_host("curl -s -o /dev/null -w '%{http_code}' -X POST "
                         "http://127.0.0.1:3003/webhook/meeting-completed", check=False).stdout
        if health is None and status == "500":
            # sick, inside the window: cron's health job runs now
            health = on_host(f"cd && {HOME}/venv/bin/fabops health --fix --json -i {HOME}/host.yml", check=False)
        time.sleep(0.5)
    assert last["result"] == "rolled_back" and last["to"] == bad, last
    assert health is not None, "the commit never answered 500 inside the window"
    report = json.loads(health.stdout)["hosts"]["find-to-do"]
    assert health.returncode == 3 and report["status"] == "busy", health.stdout + health.stderr
    assert not report.get("restarted")
    assert version() == good
    assert len(hook.texts("rolled back")) == 1, hook.got
    with_watch(inv, WATCH)
    origin.push("v7 fixed", {"VERSION": "7\n", "BEHAVIOUR": "ok\n"})
    assert deploy(inv)[0] == 0


def test_a_preflight_abort_is_recorded_notified_once_and_shown(host, origin):
    inv, hook = host
    before = len(history())
    target = origin.push("新機能追加: 会議の要約", {"VERSION": "6\n", ".env.example": "DISCORD_TOKEN=\nPORT=\nSUMMARY_KEY=\n"})
    code, res = deploy(inv)
    assert (code, res["result"]) == (2, "aborted") and "SUMMARY_KEY" in res["message"], res
    ours = [res["run_id"]]
    for _ in range(2):
        code, res = cron()
        assert res["result"] == "aborted"
        ours.append(res["run_id"])
    recs = [r for r in history()[before:] if r["run_id"] in ours]
    assert [r["result"] for r in recs] == ["aborted"] * 3
    assert recs[0]["subject"] == "新機能追加: 会議の要約" and recs[0]["to"] == target
    log = on_host("cat /var/log/voice-meeting-bot-update.log").stdout
    assert log.count("ABORTED") >= 3 and "新機能追加: 会議の要約" in log
    assert len(hook.texts("aborted")) == 1, hook.got
    assert "s3cr3t-marker" not in json.dumps(hook.got) + log
    code, findings = monitor(inv)
    assert code == 1 and any("updates failing since" in f and "SUMMARY_KEY" in f for f in findings), findings
    assert on_host(f"systemctl is-active {UNIT}").stdout.strip() == "active"
    on_host(f"echo SUMMARY_KEY=k >> {APP}/.env")
    assert deploy(inv)[0] == 0
    assert monitor(inv)[0] == 0


def test_fabops_own_files_never_jam_the_host(host, origin):
    """A rule that writes an untracked lock file and a __pycache__ (as npm
    install and Python do), through deploy, recovery, cron and reset."""
    inv, _ = host
    rule = ("#!/bin/sh\nset -e\nrm -rf vendor\nmkdir -p vendor __pycache__\n"
            "grep -qx fail requirements.txt && exit 1\ncp requirements.txt vendor/installed.txt\n"
            "echo lock > package-lock.json\necho x > __pycache__/app.cpython-311.pyc\n")
    origin.push("v7 rule writes files", {"VERSION": "7\n", "install-deps.sh": rule, "requirements.txt": "a==7\n"})
    code, res = deploy(inv)
    assert (code, res["result"]) == (0, "deployed"), res
    origin.push("v8 broken install", {"VERSION": "8\n", "requirements.txt": "fail\n"})
    code, res = deploy(inv)
    assert res["result"] == "aborted" and any(s["name"].startswith("re-run") and s["ok"] for s in res["steps"]), res
    origin.push("v9", {"VERSION": "9\n", "requirements.txt": "a==9\n"})
    code, res = cron()
    assert res["result"] == "deployed" and not res["warnings"], res
    r = fab(inv, "reset", "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    origin.push("v10", {"VERSION": "10\n", "requirements.txt": "a==10\n"})
    code, res = deploy(inv)
    assert (code, res["result"]) == (0, "deployed"), res
    assert version() == "10"


def test_a_network_blip_is_retried_not_marked_bad(host, origin):
    inv, _ = host
    flaky = ("#!/bin/sh\nset -e\nif [ -e /tmp/no-network ]; then echo 'npm ERR! network ETIMEDOUT' >&2; exit 1; fi\n"
             "rm -rf vendor && mkdir -p vendor && cp requirements.txt vendor/installed.txt\n")
    on_host("touch /tmp/no-network")
    target = origin.push("v11 needs the network", {"VERSION": "11\n", "install-deps.sh": flaky, "requirements.txt": "b==11\n"})
    code, res = cron()
    assert res["result"] == "aborted", res
    state = json.loads(on_host(f"cat {HOME}/state.json").stdout)
    assert target not in state["bad"] and state["retry"]["target"] == target
    code, res = cron()
    assert (code, res["result"]) == (1, "deferred"), res
    code, findings = monitor(inv)
    assert code == 1 and any("next try" in f for f in findings), findings
    on_host("rm -f /tmp/no-network")
    state["retry"]["next_at"] = 0  # the time has come
    on_host(f"cat > {HOME}/state.json <<'EOF'\n{json.dumps(state)}\nEOF")
    code, res = cron()
    assert res["result"] == "deployed", res
    assert version() == "11"


def test_a_deterministic_http_500_fails_fast_with_few_requests(host, origin):
    inv, _ = host
    origin.push("v12 every request fails", {"VERSION": "12\n", "BEHAVIOUR": "error\n"})
    code, res = deploy(inv)
    assert (code, res["result"]) == (2, "rolled_back"), res
    gate = [s for s in res["steps"] if s["name"] == f"restart {UNIT}"][0]
    assert "deterministic" in gate["message"] and "HTTP 500" in gate["message"], gate
    assert gate["requests"] <= 8, gate  # not 31 POSTs in 60 s
    assert version() == "11"
