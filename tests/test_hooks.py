"""Lifecycle hooks (#29; docs/pipeline.md, "Hooks"), without a run: which
hooks a plan runs (host/plan.py decides, the dry run says it), how
hosts.yml's `hooks:` validate and merge (defaults < group < host), the
command that runs one (no sudo, the script in a file, not in an argv),
what run_hook does on this machine (environment, timeout, bounded
output), and the goldens of a dry run that lists hooks. The runs
themselves: tests/test_hooks_sandbox.py."""
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fabops import inventory
from fabops.errors import ConfigError
from fabops.host import hooks as hooks_mod
from fabops.host.dry_run import actions
from fabops.host.hooks import HOOK_LOG_BYTES, hook_cmd, hook_env, hook_words, run_hook
from fabops.host.localrun import LocalContext
from fabops.host.plan import Plan, hook_runs, plan_hooks
from fabops.host.report import update_lines
from fabops.target import Target
from fabops.validate import HOOK_MAX_BYTES, HOOKS

pytestmark = pytest.mark.unit

ALL = {"before_restart": "./manage.py migrate\n./manage.py check", "after_deploy": {"run": "curl -fsS x",
                                                                                     "timeout": "10s"},
       "on_rollback": "echo rolled", "on_failure": "page-someone"}


def host_with(hooks=None, **more):
    entry = {"connection": "local", "app": {"path": "/srv/app"}, "services": [{"name": "bot", "manager": "process",
                                                                               "command": "python3 app.py"}],
             **({"hooks": hooks} if hooks is not None else {}), **more}
    return inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), "h.yml").hosts["h"]


HOST = host_with(ALL)


def a_plan(kind, **more) -> Plan:
    return Plan(kind, "aborted" if kind == "abort" else "", "why", "B" * 40, "A" * 40,
                services=("bot",) if kind in ("deploy", "restart") else (), **more)


@pytest.mark.parametrize("kind, more, expected", [
    ("deploy", {}, HOOKS),
    ("restart", {}, ("on_failure",)),
    ("abort", {}, ("on_failure",)),  # a recorded abort is a failed run
    ("abort", {"record": False}, ()),  # a refusal that asked nothing of the host (a repeat BROKEN, no target)
    ("noop", {}, ()),
    ("hold", {}, ()),
])
def test_which_hooks_a_plan_runs(kind, more, expected):
    assert plan_hooks(HOST, a_plan(kind, **more)) == expected
    assert plan_hooks(host_with(), a_plan(kind, **more)) == ()  # none set: none run
    assert plan_hooks(host_with({"after_deploy": "true"}), a_plan(kind, **more)) == tuple(
        h for h in expected if h == "after_deploy")


@pytest.mark.parametrize("name, hooks, result, trigger, runs", [
    ("before_restart", HOOKS, "", "deploy", True),
    ("before_restart", ("on_failure",), "", "deploy", False),  # not this plan's
    ("on_failure", HOOKS, "aborted", "cron", True),
    ("on_failure", HOOKS, "rolled_back", "deploy", True),
    ("on_failure", HOOKS, "broken", "cron", True),
    ("on_failure", HOOKS, "deployed", "deploy", False),
    ("on_failure", HOOKS, "skipped_bad", "cron", False),  # a hold is no failure
    ("on_failure", HOOKS, "superseded", "deploy", False),
    ("on_failure", None, "aborted", "cron", True),  # stopped before it planned (a failed fetch)
    ("on_rollback", HOOKS, "rolled_back", "deploy", True),
    ("on_rollback", HOOKS, "broken", "deploy", True),  # the rollback step ran and failed
    ("on_rollback", HOOKS, "deployed", "deploy", False),
    ("on_rollback", HOOKS, "deployed", "rollback", True),  # `inv rollback` deployed its target
])
def test_when_a_hook_runs(name, hooks, result, trigger, runs):
    assert hook_runs(HOST, name, hooks, result, trigger) is runs
    assert hook_runs(host_with(), name, hooks, result, trigger) is False


def test_the_dry_run_lists_each_hook_where_the_real_run_runs_it():
    p = replace(a_plan("deploy"), hooks=HOOKS, message="deploy A -> B")
    said = [(w.action, w.target) for w in actions(HOST, p, "deploy")]
    assert said == [("checkout", "B" * 10), ("run", "before_restart hook"), ("restart", "bot"),
                    ("run", "after_deploy hook"), ("watch", "bot"), ("run", "on_rollback hook"),
                    ("run", "on_failure hook")]
    whys = {w.target: w.why for w in actions(HOST, p, "deploy")}
    assert whys["before_restart hook"].startswith("2 lines, timeout 60 s; after the rules, before the restart")
    assert whys["after_deploy hook"].startswith("1 line, timeout 10 s; once every gate passed")
    assert whys["on_rollback hook"] == "1 line, timeout 60 s; if the run rolls back"
    back = {w.target: w.why for w in actions(HOST, p, "rollback")}
    assert back["on_rollback hook"] == "1 line, timeout 60 s; after this rollback, or if it rolls back"
    stop = replace(a_plan("abort"), hooks=("on_failure",))
    assert [w.line() for w in actions(HOST, stop)] == ["would stop: why",
                                                       "would run on_failure hook: 1 line, timeout 60 s; once: "
                                                       "this run fails"]
    assert [w for w in actions(HOST, replace(a_plan("noop"), hooks=())) if w.action == "run"] == []


def test_hooks_validate_and_merge_defaults_group_host():
    data = {"defaults": {"hooks": {"on_failure": "page", "before_restart": {"run": "migrate", "timeout": "5m"}}},
            "groups": {"web": {"hosts": ["w1", "w2"], "hooks": {"after_deploy": "smoke"}}},
            "hosts": {"w1": {"app": {"path": "/srv/a"}, "hooks": {"before_restart": {"run": "migrate --fast"},
                                                                  "on_failure": "off"}},
                      "w2": {"app": {"path": "/srv/a"}}}}
    inv = inventory.loads(yaml.safe_dump(data), "hosts.yml")
    w1, w2 = inv.hosts["w1"].hooks, inv.hosts["w2"].hooks
    # maps merge: w1's run replaces defaults', defaults' timeout stays; `off` turns defaults' hook off
    assert w1 == {"before_restart": inventory.Hook("migrate --fast", 300.0),
                  "after_deploy": inventory.Hook("smoke", 60.0)}
    assert list(w2) == ["before_restart", "after_deploy", "on_failure"]  # validate.HOOKS' order
    # host.yml carries them as hosts.yml writes them, and reads them back equal
    again = inventory.loads(yaml.safe_dump({"hosts": {"w1": inv.hosts["w1"].to_dict()}}), "host.yml")
    assert again.hosts["w1"].hooks == w1
    assert "hooks" not in host_with().to_dict()  # none: host.yml as older fabops wrote it


@pytest.mark.parametrize("hooks, key, problem", [
    ({"before_restart": "migrate\r\nexit 0"}, "hooks.before_restart", "a carriage return (CR) at position 8"),
    ({"before_restart": {"run": "echo \x1b[2J"}}, "hooks.before_restart.run", "an escape (ESC)"),
    ({"on_failure": "x" * (HOOK_MAX_BYTES + 1)}, "hooks.on_failure", f"a hook's script is at most {HOOK_MAX_BYTES}"),
    ({"on_failure": "   \n"}, "hooks.on_failure", "is empty"),
    ({"after_deploy": {"run": "true", "timeout": "2h"}}, "hooks.after_deploy.timeout", "out of range 1s-3600s"),
    ({"after_deploy": {"timeout": "20s"}}, "hooks.after_deploy.run", "is required"),
    ({"after_deploy": 3}, "hooks.after_deploy", "must be shell code or a mapping"),
    ({"before_deploy": "true"}, "hooks.before_deploy", "unknown key"),
])
def test_a_bad_hook_is_refused_naming_its_key(hooks, key, problem):
    with pytest.raises(ConfigError) as info:
        host_with(hooks)
    assert f"hosts.h.{key}" in str(info.value) and problem in str(info.value), str(info.value)


def test_the_command_runs_the_script_from_a_file_as_this_user():
    """No sudo (the hook has the deploy user's rights: docs/security.md,
    "Hooks"), the script only in a file, the timeout around it."""
    cmd = hook_cmd("/srv/app", "/home/d/.fabops/app/hook-x.sh", 60.0)
    assert "sudo" not in cmd and "migrate" not in cmd
    assert cmd == "cd /srv/app && exec timeout -k 5 60.0 bash /home/d/.fabops/app/hook-x.sh </dev/null 2>&1"


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to be nobody")
def test_the_hook_command_as_an_unprivileged_deploy_user_cannot_become_root(tmp_path):
    """The command the pipeline runs (hook_cmd), run by an unprivileged
    user as the pipeline on a host runs it (the deploy user: here nobody,
    through setpriv): the hook is that user, cannot read a root-only file
    and cannot sudo (docs/security.md, "Hooks add no power")."""
    script = tmp_path / "hook-on_failure-x.sh"
    script.write_text("id -u\ncat /etc/shadow >/dev/null 2>&1 && echo READ-SHADOW\n"
                      "sudo -n true >/dev/null 2>&1 && echo SUDO-OK\necho done\n")
    for p in (tmp_path, script):
        os.chown(p, 65534, 65534)
    tmp_path.chmod(0o700)
    parents = [p for p in tmp_path.parents if p != Path("/")]
    modes = {p: p.stat().st_mode for p in parents}
    try:
        for p in parents:  # nobody may walk to its own directory (the test's tmp_path is root's)
            p.chmod(modes[p] | 0o001)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", "-c",
                            hook_cmd(str(tmp_path), str(script), 10.0)], capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    finally:
        for p in parents:
            p.chmod(modes[p])
    assert r.stdout.split() == ["65534", "done"], r.stdout + r.stderr


def _target(tmp_path):
    host = host_with(home=str(tmp_path / "home"), app={"path": str(tmp_path)})
    (tmp_path / "home").mkdir()
    return Target.of(LocalContext(host.env), host), host


def test_run_hook_gives_the_environment_and_keeps_the_output_bounded(tmp_path):
    t, host = _target(tmp_path)
    env = hook_env(host, "on_failure", run_id="R1", trigger="cron", actor="cron@h", from_="A" * 40, to=None,
                   result="aborted", message="fetch failed", app=str(tmp_path))
    ran = run_hook(t, str(tmp_path / "home"), str(tmp_path), "on_failure",
                   'echo "$FABOPS_HOOK $FABOPS_RESULT [$FABOPS_TO] $FABOPS_MESSAGE $(id -u) $PWD"\n'
                   f"head -c {HOOK_LOG_BYTES + 10} /dev/zero | tr '\\0' x\necho\necho done", 10.0, env)
    assert ran.ok and not ran.timed_out, ran
    # the end kept (where an error is), the cut said: all but the last HOOK_LOG_BYTES
    cut = len(f"on_failure aborted [] fetch failed {os.getuid()} {tmp_path}\n") + 10 + len("\ndone\n")
    assert ran.output.startswith(f"[{cut} bytes of output cut]\nxxx") and ran.output.endswith("x\ndone\n")
    assert len(ran.output.encode()) <= HOOK_LOG_BYTES + 40 and ran.said(10.0) == "ok: done"
    first = run_hook(t, str(tmp_path / "home"), str(tmp_path), "on_failure", 'echo "$FABOPS_HOOK $FABOPS_RESULT '
                     '[$FABOPS_TO] $FABOPS_MESSAGE $(id -u) $PWD"; exit 4', 10.0, env)
    assert first.output.strip() == f"on_failure aborted [] fetch failed {os.getuid()} {tmp_path}"
    assert not first.ok and first.said(10.0).startswith("exit 4: on_failure aborted")
    assert list((tmp_path / "home").iterdir()) == []  # the script files are gone


def test_a_hook_past_its_timeout_is_killed_with_its_group(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks_mod, "KILL_AFTER", 1)
    t, host = _target(tmp_path)
    started = time.monotonic()
    ran = run_hook(t, str(tmp_path / "home"), str(tmp_path), "before_restart",
                   "trap '' TERM\n(trap '' TERM; sleep 60) &\necho $! > child\necho started\nsleep 60", 1.0,
                   hook_env(host, "before_restart", run_id="R", trigger="deploy", actor="a", from_=None, to=None))
    assert time.monotonic() - started < 15
    assert ran.timed_out and not ran.ok and ran.said(1.0) == "timed out after 1 s (killed with its process group): " \
                                                            "started"
    from tests.harness.agent import wait_gone

    assert wait_gone(int((tmp_path / "child").read_text())), "a child that ignores SIGTERM outlived the timeout"


def test_hook_words():
    assert hook_words(inventory.Hook("a\n\nb\n\n", 30.0)) == "3 lines, timeout 30 s"  # the end's line breaks are no lines
    assert hook_words(inventory.Hook("a", 1.5)) == "1 line, timeout 1.5 s"


# ---------------------------------------------------------------- goldens

def _dry_plan():
    p = replace(a_plan("deploy"), hooks=HOOKS, message=f"deploy {'A' * 10} -> {'B' * 10}")
    return {"kind": "deploy", "from": "A" * 40, "to": "B" * 40, "changed_files": 2, "dirty": [], "pin": None,
            "bad": False, "known_bad": None, "rules": [], "restart": ["bot"],
            "would": [w.to_dict() for w in actions(HOST, p, "deploy")]}


@pytest.mark.parametrize("width", (80, 200))
def test_golden_deploy_dry_run_lists_the_hooks(width, capsys, monkeypatch):
    from tests.test_golden import check, render
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    res = {"result": "would_deploy", "exit_code": 0, "from": "A" * 40, "to": "B" * 40, "duration": 0.2,
           "message": f"would deploy {'A' * 10} -> {'B' * 10}", "plan": _dry_plan()}
    ok = HostResult("web1", value=SimpleNamespace(result=res, install=None))
    text = render(capsys, monkeypatch, width, _report, FanoutResult([ok]), False, dry_run=True)
    flat = " ".join(text.split())
    assert "would run before_restart hook: 2 lines, timeout 60 s;" in flat, text
    assert text.index("before_restart hook") < text.index("would restart") < text.index("after_deploy hook")
    check("deploy-dry-run-hooks", width, text)


def test_local_update_dry_run_lists_the_hooks():
    result = SimpleNamespace(result="would_deploy", message=f"would deploy {'A' * 10} -> {'B' * 10}", warnings=[],
                             exit_code=0)
    text, to_stderr = update_lines("web1", result, True, _dry_plan())
    assert not to_stderr and text.splitlines()[1:] == [
        "  restart: bot",
        "  would run before_restart hook: 2 lines, timeout 60 s; after the rules, before the restart; a failure "
        "stops the run, nothing restarted, the checkout put back",
        "  would run after_deploy hook: 1 line, timeout 10 s; once every gate passed; if it fails the run rolls "
        "back as a failed gate does",
        "  would run on_rollback hook: 1 line, timeout 60 s; if the run rolls back",
        "  would run on_failure hook: 1 line, timeout 60 s; once, if the run fails"]
