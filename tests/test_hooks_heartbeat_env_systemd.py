"""Issue #29's hooks, heartbeat and env-set on the booted hosts, from a
wheel install (systemd tier; docs/testing.md): bookworm, and bullseye (the
host side on Python 3.9), one container boot per image. fabops reaches the
host as the user's path does (tests/test_journey.py): the built wheel in a
clean venv, `inv` in a directory holding only hosts.yml and tasks.py.

- hooks (docs/hooks.md): a failing before_restart aborts with nothing
  restarted (every unit's MainPID unchanged) and the checkout put back; a
  failing after_deploy rolls back and marks the commit bad; on_failure runs
  once per failed run (a person's two and cron's one); a hook runs as the
  deploy user, who keeps only fabops' drop-in (no sudo, no /etc/shadow:
  docs/security.md, "Hooks add no power"), in the app directory, with the
  documented FABOPS_* variables and no others.
- env-set (docs/maintenance.md, "Secrets without an editor"): env-set with
  the value on stdin, env-push of a file, env-unset, over SSH; the bot (a
  unit setup wrote) and a unit whose EnvironmentFile= names the .env
  restart, a unit that does not read it keeps its PID; no value in any
  process's argv on this machine or the host (the container's processes
  are this machine's too: ArgvWatch's `ps` sees them), nor in history, the
  update log or cron.log.
- heartbeat (docs/monitor.md, "Heartbeat"): a sink on our side of the veth
  pair sees nothing while cron is stopped with its line installed. On
  bookworm (for a poll's time past the quiet phase's start, spent on the
  two parts above and polled for the rest), then with the real cron
  running the update line every minute (splay 0, as
  tests/test_systemd_tier.py's real-cron test shortens the poll) until its
  first run: one ping per cron run (cron's own CMD lines in the journal),
  the success URL for a held bad target. Then, cron stopped, the fail URL
  for a run whose before_restart fails, cron's line run by hand as cron
  runs it (its user, its bare environment). On bullseye both runs are by
  hand: the daemon is Debian's on both, and what bullseye adds is fabops'
  host side on Python 3.9.

A minute is cron's shortest period, so the daemon's part costs one or two
minutes on bookworm (the aborted run by hand saves the second minute's
wait); everything else fits in its quiet phase.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest
import yaml

from tests.conftest import check_json_output, require
from tests.harness import container
from tests.harness.sandbox import Origin
from tests.harness.webhook import Hook
from tests.test_journey import APP, TASKS_PY, UNIT, User, on_host
from tests.test_secrets_argv import ArgvWatch
from tests.test_systemd_tier import find_to_do_alias

pytestmark = pytest.mark.systemd
HOME = "/home/ec2-user/.fabops/voice-meeting-bot"
UPDATE_LOG = "/var/log/voice-meeting-bot-update.log"
# two units besides the bot that env-set must tell apart (docs/maintenance.md, step 3)
READER, IGNORER = "env-reader.service", "env-ignorer.service"
POLL = 60  # cron's update line runs every minute (splay 0): its polls fall on the minute
# how long after its minute a poll's ping may arrive on a loaded machine; the
# quiet phase waits this long past its second poll, and the first ping after
# cron starts checks it was long enough
PING_LAG = 20
VALUE = "fabops-booted-env-v4lue-7c1e"  # the secret env-set carries (never in an argv or a record)

BEFORE = f"""id -u > ~/hook-user
id -un >> ~/hook-user
if sudo -n true 2>/dev/null; then echo SUDO >> ~/hook-user; fi
if cat /etc/shadow >/dev/null 2>&1; then echo SHADOW >> ~/hook-user; fi
pwd > ~/hook-pwd
env | grep ^FABOPS_ | sort > ~/hook-env
if [ -f NOMIGRATE ]; then echo 'migration 7 failed' >&2; exit 3; fi
echo migrated
"""


def _unit(description: str, env_file: str = "") -> str:
    """A unit fabops did not write (no `unit: true`), run as ec2-user so
    that setup's root-unit check has nothing to refuse."""
    return (f"[Unit]\nDescription={description}\n[Service]\nUser=ec2-user\n"
            + (f"EnvironmentFile={env_file}\n" if env_file else "") + "ExecStart=/bin/sleep infinity\n"
            "[Install]\nWantedBy=multi-user.target\n")


def _inventory(sink: str) -> dict:
    bot = {"name": UNIT, "unit": True, "command": "python3 app.py", "port": 3003, "timeout": "60s",
           "settle": "500ms", "watch": "2s",
           "check": {"url": "http://127.0.0.1:3003/webhook/meeting-completed", "method": "POST",
                     "json": {"test": "health"}}}
    return {"default": "find-to-do", "hosts": {"find-to-do": {
        "user": "ec2-user",
        "app": {"path": APP},
        "services": [bot, {"name": READER, "settle": "200ms"}, {"name": IGNORER, "settle": "200ms"}],
        "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}],
        "env_file": ".env",
        "logs": {"update": UPDATE_LOG, "health": "/var/log/voice-meeting-bot-health.log"},
        "schedule": {"update": "* * * * *", "health": "off", "clean": "off", "backup-env": "off"},
        "heartbeat": {"url": sink, "timeout": "5s"},
        "hooks": {
            "before_restart": BEFORE,
            "after_deploy": {"run": "if [ -f BADSMOKE ]; then echo 'smoke: 500'; exit 1; fi", "timeout": "20s"},
            "on_rollback": 'echo "$FABOPS_RESULT $FABOPS_TO" >> ~/rolled',
            "on_failure": 'echo "$FABOPS_RESULT $FABOPS_TRIGGER $FABOPS_RUN_ID" >> ~/failures',
        },
    }}}


@dataclass
class Booted:
    suite: str
    box: container.Container
    origin: Origin
    user: User
    sink: Hook
    quiet_since: float  # cron stopped, its line installed: no ping may come from here on
    good: str = ""  # the commit the hooks part leaves deployed
    bad: str = ""  # the one it marks bad


@pytest.fixture(scope="module", params=container.SUITES)
def booted(request, tmp_path_factory, client_key, user_venv):
    """One boot per image: the two extra units, cron stopped, then setup
    (which installs cron's line), cron's line at splay 0 and a first
    deploy, all from the wheel install. The sink and the container go at
    teardown, also when a test failed."""
    why = container.usable()
    require(why is None, why or "")
    origin = Origin(tmp_path_factory.mktemp(f"origin-{request.param}"))
    with container.booted(request.param, tmp_path_factory, client_key, {str(origin.bare): "/srv/origin.git"}) as box:
        sink = Hook(box.address.rsplit(".", 1)[0] + ".1")  # our side of the veth
        try:
            user = _user(tmp_path_factory.mktemp(f"laptop-{request.param}"), user_venv, box, client_key,
                         sink.url.replace("/hook", "/beat"))
            yield Booted(request.param, box, origin, user, sink, _first_deploy(box, user))
        finally:
            sink.close()


def _user(base: Path, venv: Path, box, client_key, sink: str) -> User:
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    find_to_do_alias(box, client_key, home)
    work = base / "ops"
    work.mkdir()
    (work / "hosts.yml").write_text(yaml.safe_dump(_inventory(sink), sort_keys=False))
    (work / "tasks.py").write_text(TASKS_PY)
    return User(work, venv, home)


def _first_deploy(box, user: User) -> float:
    """The checkout and its .env, the units (the reader's EnvironmentFile=
    must exist), cron stopped before setup installs its line
    (nothing may ping until the heartbeat test starts it), setup and a
    first deploy; returns when the quiet phase began."""
    env = f"{APP}/.env"
    on_host(user, f"git clone --quiet /srv/origin.git {APP} && printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > {env}")
    box.as_root(f"printf %s '{_unit('reads the app .env', env)}' > /etc/systemd/system/{READER} && "
                f"printf %s '{_unit('reads no .env')}' > /etc/systemd/system/{IGNORER} && "
                f"systemctl daemon-reload && systemctl start {READER} {IGNORER} && systemctl stop cron")
    r = user.inv("setup", "--yes", "--offline")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    r = user.inv("cron", "--install", "--splay", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    quiet_since = time.time()
    assert "local-update --trigger cron --splay 0" in on_host(user, "crontab -l").stdout
    r = user.inv("deploy")
    assert r.returncode == 0, r.stdout + r.stderr + _journal(box)
    return quiet_since


def _journal(box) -> str:
    """The units' last journal lines, for a failure's message."""
    return box.as_root(f"journalctl --no-pager -n 40 -u {UNIT} -u {READER} -u {IGNORER}", check=False).stdout


def _pid(user: User, unit: str = UNIT) -> str:
    return on_host(user, f"systemctl show -p MainPID --value {unit}").stdout.strip()


def _pids(user: User) -> dict:
    return {u: _pid(user, u) for u in (UNIT, READER, IGNORER)}


def _lines(user: User, path: str) -> List[str]:
    return on_host(user, f"cat {path} 2>/dev/null || true").stdout.split("\n")[:-1]


def _host_json(r: subprocess.CompletedProcess) -> dict:
    return json.loads(r.stdout)["hosts"]["find-to-do"]


def _head(user: User) -> str:
    return on_host(user, f"git -C {APP} rev-parse HEAD").stdout.strip()


def test_hooks_stop_roll_back_and_run_as_the_deploy_user(booted):
    user, origin = booted.user, booted.origin
    uid, name = _lines(user, "~/hook-user")[:2]
    assert name == "ec2-user" and uid != "0", (uid, name)  # the deploy user
    # ec2-user starts with cloud-init's NOPASSWD: ALL, as on EC2, so that
    # setup can run; from here on it has only fabops' drop-in, as
    # docs/security.md asks of a deploy user
    on_host(user, "sudo -n rm -f /etc/sudoers.d/90-cloud-init-users")
    good, pids = _head(user), _pids(user)
    # a failing before_restart: aborted, no unit restarted, the checkout back
    target = origin.push("v2 whose migration fails", {"VERSION": "2\n", "NOMIGRATE": "x\n"})
    r = user.inv("deploy", "--json")
    res = _host_json(r)
    assert (r.returncode, res["result"]) == (2, "aborted"), r.stdout + r.stderr
    assert "the before_restart hook failed (exit 3: migration 7 failed)" in res["message"], res["message"]
    assert _pids(user) == pids and _head(user) == good
    assert _lines(user, "~/hook-user") == [uid, "ec2-user"]  # no sudo, no /etc/shadow
    assert _lines(user, "~/hook-pwd") == [APP]
    hook_env = dict(line.split("=", 1) for line in _lines(user, "~/hook-env"))
    actor = hook_env.pop("FABOPS_ACTOR", "")
    assert actor and hook_env == {  # docs/hooks.md's table, and nothing else
        "FABOPS_APP": APP, "FABOPS_FROM": good, "FABOPS_HOOK": "before_restart", "FABOPS_HOST": "find-to-do",
        "FABOPS_MESSAGE": "", "FABOPS_RESULT": "", "FABOPS_RUN_ID": res["run_id"], "FABOPS_TO": target,
        "FABOPS_TRIGGER": "deploy"}, hook_env
    assert _lines(user, "~/failures") == [f"aborted deploy {res['run_id']}"]
    # a failing after_deploy: rolled back as a failed gate, the commit marked bad
    bad = origin.push("v3 fails its smoke test", {"VERSION": "3\n", "NOMIGRATE": None, "BADSMOKE": "x\n"})
    r = user.inv("deploy", "--json")
    res = _host_json(r)
    assert (r.returncode, res["result"]) == (2, "rolled_back"), r.stdout + r.stderr
    assert "the after_deploy hook failed: exit 1: smoke: 500" in res["message"], res["message"]
    state = json.loads(on_host(user, f"cat {HOME}/state.json").stdout)
    assert bad in state["bad"] and state["deployed"] == good and _head(user) == good, state
    assert _lines(user, "~/rolled") == [f"rolled_back {bad}"]
    failures = _lines(user, "~/failures")
    assert [f.split()[:2] for f in failures] == [["aborted", "deploy"], ["rolled_back", "deploy"]], failures
    assert failures[1].split()[2] == res["run_id"]  # once per failed run, each its own
    assert on_host(user, f"systemctl is-active {UNIT}").stdout.strip() == "active"
    assert _lines(user, "~/hook-user") == [uid, "ec2-user"]
    booted.good, booted.bad = good, bad


def _inv_with_stdin(user: User, *args: str, stdin: str) -> subprocess.CompletedProcess:
    """User.inv with the value on stdin (a pipe: env-set reads it there)."""
    r = subprocess.run(["inv", *args], cwd=user.workdir, env=user.env(), capture_output=True, text=True,
                       timeout=300, input=stdin)
    check_json_output(args, r)
    return r


def _restarted(res: dict) -> dict:
    return {s["service"]: s["restart"] for s in res["services"]}


def test_env_set_push_and_unset_restart_only_the_units_that_read_it(booted, tmp_path):
    user, box = booted.user, booted.box
    local = tmp_path / "push.env"
    local.write_text(f"PUSHED={VALUE}-pushed\n")
    before = _pids(user)
    with ArgvWatch(VALUE) as watch:
        r = _inv_with_stdin(user, "env-set", "API_TOKEN", "--json", stdin=VALUE + "\n")
        after_set = _pids(user)
        pushed = user.inv("env-push", str(local), "--json")
        unset = user.inv("env-unset", "PUSHED", "--json")
        watch.wait_snapshots(1)
    outputs = [r, pushed, unset]
    assert [x.returncode for x in outputs] == [0, 0, 0], [x.stdout + x.stderr for x in outputs]
    assert not [x for x in outputs if VALUE in x.stdout + x.stderr]
    assert watch.count > 3 and not watch.hits, watch.hits
    res = _host_json(r)
    assert res["keys"] == {"added": ["API_TOKEN"], "removed": [], "changed": []}, res
    assert all(x["ok"] for x in res["ready"]) and not res["rolled_back"], res
    assert _host_json(pushed)["keys"]["added"] == ["PUSHED"] and _host_json(unset)["keys"]["removed"] == ["PUSHED"]
    env = on_host(user, f"cat {APP}/.env").stdout
    assert f"API_TOKEN={VALUE}\n" in env and "PUSHED" not in env, "the value set, the pushed key unset"
    records = f"{HOME}/history.jsonl {UPDATE_LOG} {HOME}/cron.log {HOME}/state.json"
    leaked = on_host(user, f"grep -l -F -e {VALUE} {records} 2>/dev/null", check=False).stdout
    assert leaked == "", leaked
    # each change restarted the bot; the unit that reads no .env kept its process
    after = _pids(user)
    assert before[UNIT] != after_set[UNIT] != after[UNIT], (before, after_set, after)
    assert after[IGNORER] == before[IGNORER] and not _restarted(res)[IGNORER], (before, after, res["services"])
    _the_reader_restarted(box, res, before, after_set, after)


def _the_reader_restarted(box, res: dict, before: dict, after_set: dict, after: dict) -> None:
    """The unit whose EnvironmentFile= names the .env restarted with each
    change and holds the value in its environment (read as root):
    systemctl prints a unit's EnvironmentFiles= before its Id=, which
    envset.parse_unit_files once read as the previous unit's."""
    assert _restarted(res)[READER], res["services"]
    assert before[READER] != after_set[READER] != after[READER], (before, after_set, after)
    environ = box.as_root(f"tr '\\0' '\\n' < /proc/{after[READER]}/environ").stdout
    assert f"API_TOKEN={VALUE}" in environ.splitlines()


def _wait_pings(sink: Hook, n: int, deadline: float) -> List[str]:
    while len(sink.gets) < n and time.time() < deadline:
        time.sleep(0.5)
    return list(sink.gets)


def _cron_runs(box) -> int:
    """cron's own word for how many times it ran the update line: its CMD
    lines in the journal (cron logs to syslog, which journald keeps)."""
    out = box.as_root("journalctl --no-pager -o cat -t CRON -t cron", check=False).stdout
    return len([ln for ln in out.splitlines() if " CMD (" in ln and "local-update --trigger cron" in ln])


def _no_update_running(box, deadline: float) -> None:
    """Polls until no cron update runs (a run cron started before it was
    stopped finishes and pings: cron.service stops only the daemon); the
    pattern's [c] keeps the shell that runs pgrep from matching itself."""
    while time.time() < deadline:
        if box.as_root("pgrep -f 'local-update --trigger [c]ron'", check=False).returncode != 0:
            return
        time.sleep(0.5)
    pytest.fail("cron's local-update still running after cron was stopped")


def _by_hand(user: User, box, codes) -> None:
    """cron's update line, run as cron runs it: the deploy user, the
    crontab's own command (its `\\%` unescaped), cron's bare environment."""
    (line,) = [ln for ln in on_host(user, "crontab -l").stdout.splitlines() if "local-update --trigger cron" in ln]
    command = line.split(None, 5)[5].replace("\\%", "%")
    r = box.as_root(f"cd /home/ec2-user && runuser -u ec2-user -- env -i HOME=/home/ec2-user LOGNAME=ec2-user "
                    f"SHELL=/bin/sh PATH=/usr/bin:/bin sh -c {shlex.quote(command)}", check=False)
    assert r.returncode in codes, (r.returncode, on_host(user, f"tail -n 20 {HOME}/cron.log").stdout)


def test_heartbeat_pings_once_per_cron_run_and_never_while_cron_is_stopped(booted):
    """On bookworm the real cron daemon runs the line for the held bad
    commit's run (a success ping); on bullseye, and for the aborted run on
    both, the line is run by hand, as cron runs it (the daemon is Debian's
    on both: what bullseye adds is fabops' host side on Python 3.9). Cron's
    shortest period is a minute: one of them is the daemon's part."""
    user, box, sink, origin = booted.user, booted.box, booted.sink, booted.origin
    require(booted.bad, "the hooks test did not leave its bad commit (it failed)")
    real = booted.suite == "bookworm"
    if real:
        # quiet: cron stopped since before its line was installed; wait out
        # a poll past the quiet phase's start (and a ping's lag), watching
        # the sink all the while
        next_poll = (booted.quiet_since // POLL + 1) * POLL + PING_LAG
        while time.time() < next_poll and not sink.gets:
            time.sleep(0.5)
    assert sink.gets == [], f"pinged while cron was stopped: {sink.gets}"
    assert "local-update --trigger cron" in on_host(user, "crontab -l").stdout  # the line was there all along
    if real:
        box.as_root("systemctl start cron")
    else:
        _by_hand(user, box, (0, 1))  # a held bad commit is a warning (docs/errors.md)
    # the origin's head is the bad commit: cron's run holds it (skipped_bad), a success
    assert _wait_pings(sink, 1, time.time() + 2 * POLL + PING_LAG)[:1] == ["/beat"], sink.gets
    if real:
        assert time.time() % POLL < PING_LAG, "a ping came later than PING_LAG after its minute: the quiet wait was short"
        box.as_root("systemctl stop cron")
        _no_update_running(box, time.time() + 60)
        cron_runs = _cron_runs(box)
        assert _wait_pings(sink, cron_runs + 1, time.time() + 2) == ["/beat"] * cron_runs, (sink.gets, cron_runs)
    fails_before = len(_lines(user, "~/failures"))
    target = origin.push("v4 whose migration fails", {"VERSION": "4\n", "BADSMOKE": None, "NOMIGRATE": "x\n"})
    _by_hand(user, box, (2,))  # before_restart failed: aborted
    deadline = time.time() + PING_LAG
    while "/beat/fail" not in sink.gets and time.time() < deadline:
        time.sleep(0.5)
    pings = list(sink.gets)
    assert pings.count("/beat/fail") == 1 and set(pings) == {"/beat", "/beat/fail"}, pings
    runs = (_cron_runs(box) if real else 1) + 1  # the daemon's runs (or the first by hand), then the aborted one
    assert len(pings) == runs, (pings, runs)  # one ping per cron run
    # cron's failed run ran on_failure once, as cron's
    (cron_failure,) = _lines(user, "~/failures")[fails_before:]
    assert cron_failure.startswith("aborted cron "), cron_failure
    history = [json.loads(x) for x in _lines(user, f"{HOME}/history.jsonl")]
    (row,) = [h for h in history if h.get("run_id") == cron_failure.split()[2]]
    assert (row["trigger"], row["result"], row["to"]) == ("cron", "aborted", target), row
    last = _host_json(user.inv("monitor", "--json"))["heartbeat"]["last"]
    assert last["ok"] and last["run"] == "update", last
