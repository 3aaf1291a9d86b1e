"""#24's trial: `remembered bad targets: d7e34dae52` stayed on every monitor
panel long after origin moved past that commit. A bad target that is an
ancestor of the checkout's commit or of origin's head (as last fetched) is
one cron never targets again: the panel leaves it out (docs/monitor.md);
state.json keeps it, `--json`'s `bad` lists it, `bad_ahead` does not."""
import json
import os
import subprocess

import pytest
import yaml

from fabops import inventory, monitor, remote
from tests.test_golden import frozen  # noqa: F401 (the panel's clock)

ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
           GIT_COMMITTER_EMAIL="t@x", GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")


def _git(app, *args) -> str:
    return subprocess.run(["git", "-C", str(app), *args], env=ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit(app, name: str) -> str:
    (app / "f").write_text(name)
    _git(app, "add", "f")
    _git(app, "commit", "-qm", name)
    return _git(app, "rev-parse", "HEAD")


def bad_targets_host(tmp_path, shell: str):
    """A local host whose checkout is on `good`, with three bad targets in
    its state.json: `past` (an ancestor of the checkout: origin moved past
    it), `head` (origin's head as last fetched, ahead of the checkout) and
    `side` (on no branch cron follows). Returns (host, (past, good, head, side));
    the test is skipped where `shell`, which will run the script, is missing."""
    import shutil

    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    app = tmp_path / "app"
    app.mkdir()
    _git(app, "init", "-q", "-b", "main")
    past = _commit(app, "bad, then fixed")  # an ancestor of the checkout
    good = _commit(app, "fixed")
    head = _commit(app, "origin's head, bad")
    _git(app, "update-ref", "refs/remotes/origin/main", head)
    _git(app, "reset", "-q", "--hard", good)  # the checkout is behind origin's bad head
    _git(app, "checkout", "-q", "-b", "side", past)
    side = _commit(app, "a side commit, bad")  # on no branch cron follows: not an ancestor of either
    _git(app, "checkout", "-q", "main")
    home = tmp_path / "home"
    home.mkdir()
    bad = {c: {"reason": "gate failed", "at": 1.0} for c in (past, head, side)}
    (home / "state.json").write_text(json.dumps({"deployed": good, "bad": bad}, indent=2))
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "app": {"path": str(app)}, "home": str(home),
        "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}), "x.yml").hosts["h"]
    return host, (past, good, head, side)


@pytest.mark.parametrize("shell", ["sh", "dash"])
def test_a_bad_target_origin_moved_past_is_not_shown(tmp_path, shell):
    host, (past, good, head, side) = bad_targets_host(tmp_path, shell)
    bad = (past, head, side)
    out = subprocess.run([shell, "-c", monitor.monitor_script(host, window=0)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout
    dep = monitor.parse(out, host)["deploy"]
    assert dep["bad"] == sorted(bad) and dep["bad_ahead"] == sorted([head, side]), (dep, out)
    # an older script's output (no section): all of them, as before
    assert remote.bad_ahead(sorted(bad), (head, good), None) is None


@pytest.mark.parametrize("width", (80, 200))
def test_the_panel_leaves_out_a_bad_target_origin_moved_past(width, frozen, capsys, monkeypatch):  # noqa: F811
    """The recorded process host's panel with one bad target behind the
    checkout: no `remembered bad targets` line (it said one before)."""
    from fabops import errors
    from fabops.probe import MARK
    from fabops.tasks.observe import render_host
    from fabops.tasks.render import console
    from tests.conftest import ROOT
    from tests.test_golden import check, render

    case = json.loads((ROOT / "tests" / "fixtures" / "parse_monitor" / "process_recorded.json").read_text())
    host = inventory.loads(yaml.safe_dump({"hosts": {"sandbox": case["host"]}}), "x.yml").hosts["sandbox"]
    state = json.loads(monitor.split_sections(case["output"])["state"])
    old = "d7e34dae52" + "0" * 30
    state["bad"] = {old: {"reason": "gate failed", "at": 1.0}}
    output = case["output"] + f"\n{MARK}state\n{json.dumps(state, indent=2)}\n{MARK}behind\n{old}\nok\n"
    facts = monitor.parse(output, host, case["now"])
    assert facts["deploy"]["bad"] == [old] and facts["deploy"]["bad_ahead"] == [], facts["deploy"]
    code, findings = monitor.evaluate(facts, host, case["now"])
    facts.update(status=errors.NAMES[code], code=code,
                 findings=[{"level": errors.NAMES[c], "message": m} for c, m in findings])
    text = render(capsys, monkeypatch, width, lambda: console().print(render_host(facts, host)))
    assert "remembered bad targets" not in text and "d7e34dae52" not in text, text
    shown = dict(facts, deploy=dict(facts["deploy"], bad_ahead=None))  # not read: shown, as before
    assert "remembered bad targets" in render(capsys, monkeypatch, width,
                                              lambda: console().print(render_host(shown, host)))
    check("monitor-bad-behind", width, text)
