"""A dry run on a host whose fabops is older than the laptop's (issue #24):
the host's planner cannot run before the install, and the laptop keeps no
copy of its decision (§8, decide once). The result is `would_install`: it
would install fabops, then the host's planner decides, from --ref (a
rollback's --to), a deploy's branch head or a rollback's own pick; with
only facts the laptop read (the commit that is, where the checkout is,
the host's known-bad list), and no verdict. Before, fabops/deploy.py
re-made the planner's noop, moved-checkout, cut-off-run and restart cases
on the laptop (`up to date at …`, `would deploy A -> B`, `… the host's
planner restarts it`)."""
import json
import re
from types import SimpleNamespace

import pytest

from fabops import inventory
from fabops.deploy import DeployOptions, DeployOutcome, _dry_run
from fabops.install import InstallResult
from fabops.shortsha import short_sha

DEPLOYED = "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"
OLDER = "3f2a9c1d7e6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
HEAD = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"  # the branch head on the remote
INSTALL = "would upgrade from 0.9.0 fabops 1.0.0"
PREFLIGHT = "preflight not run: fabops is not installed on the host at this version yet"
# the watch the real run keeps after the gate, from hosts.yml (its default 30 s), as the installed dry run says it
WATCH = ("; if it goes ahead, it would watch voice-meeting-discord-bot.service for 30 s after the gate, and roll back "
         "if one dies or fails its check there")


@pytest.fixture
def host():
    return inventory.loads("hosts:\n  find-to-do:\n    app: {path: /srv/app}\n    services:\n"
                           "      - {name: voice-meeting-discord-bot.service}\n", "h.yml").hosts["find-to-do"]


@pytest.fixture
def older_fabops(monkeypatch):
    """The host has an older fabops; its status says DEPLOYED; ls-remote says HEAD."""
    import fabops.deploy
    import fabops.install

    monkeypatch.setattr(fabops.install, "ensure_installed",
                        lambda c, h, **kw: InstallResult(True, "1.0.0", "ab" * 32, "3.9", INSTALL))
    status({"deployed": DEPLOYED, "head": DEPLOYED}, monkeypatch)
    calls = []

    class Remote:
        def run(self, cmd, *a, **kw):
            calls.append(str(cmd))
            return SimpleNamespace(ok=True, stdout=f"{HEAD}\trefs/heads/main\n", stderr="")

    monkeypatch.setattr(fabops.deploy.Target, "of", classmethod(lambda cls, c, h: Remote()))
    return calls


def status(value: dict, monkeypatch) -> None:
    import fabops.remote

    monkeypatch.setattr(fabops.remote, "gather_status", lambda c, h: value)


def dry_run(host, **opts):
    return _dry_run(None, host, DeployOptions(dry_run=True, **opts), DeployOutcome(host.name, "r1"), lambda e: None)


def test_a_deploy_would_install_then_the_planner_decides_from_the_branch_head(host, older_fabops):
    res = dry_run(host).result
    assert res["message"] == (f"{INSTALL}; then the host's planner decides, from the head of main "
                              f"(now {short_sha(HEAD)}){WATCH}"), res
    assert (res["result"], res["exit_code"], res["from"], res["to"]) == ("would_install", 0, DEPLOYED, HEAD), res
    assert res["warnings"] == [PREFLIGHT] and res["plan"]["to"] == HEAD and not res["plan"]["bad"], res
    assert len(older_fabops) == 1 and "ls-remote" in older_fabops[0]


def test_a_rollback_names_no_target_the_hosts_planner_has_not_picked(host, older_fabops):
    res = dry_run(host, trigger="rollback", clear_pin=False).result
    assert (res["result"], res["from"], res["to"], res["exit_code"]) == ("would_install", DEPLOYED, None, 0), res
    assert res["message"] == (f"{INSTALL}; then the host's planner decides, from its history: it picks the commit "
                              "to roll back to, or refuses if there is none (this dry run cannot name it before "
                              f"fabops is on the host){WATCH}"), res
    assert not older_fabops  # no ls-remote: the branch head is no rollback's target
    res = dry_run(host, trigger="rollback", ref=OLDER, clear_pin=False).result
    assert (res["result"], res["to"]) == ("would_install", OLDER), res
    assert res["message"] == f"{INSTALL}; then the host's planner decides, from --ref {OLDER}{WATCH}", res


def test_a_ref_it_cannot_resolve_or_a_head_it_cannot_read_names_no_commit(host, older_fabops, monkeypatch):
    import fabops.deploy

    for ref in (DEPLOYED[:7], "main"):
        res = dry_run(host, ref=ref).result
        assert (res["result"], res["to"], res["plan"]["to"]) == ("would_install", None, None), res
        assert res["message"].endswith(f"from --ref {ref}, which it resolves after its fetch{WATCH}"), res
    assert not older_fabops, "no ls-remote for a --ref"

    class Unreadable:
        def run(self, cmd, *a, **kw):
            return SimpleNamespace(ok=False, stdout="", stderr="fatal: could not read from remote")

    monkeypatch.setattr(fabops.deploy.Target, "of", classmethod(lambda cls, c, h: Unreadable()))
    res = dry_run(host).result
    assert (res["result"], res["to"]) == ("would_install", None), res
    assert res["message"].endswith(f"from the head of main, which git ls-remote could not read{WATCH}"), res


def test_it_says_the_facts_it_read_a_known_bad_commit_and_a_moved_checkout(host, older_fabops, monkeypatch):
    status({"deployed": DEPLOYED, "head": OLDER, "bad": [HEAD]}, monkeypatch)
    res = dry_run(host).result
    bad = f"{short_sha(HEAD)} failed its gate before: the host's known-bad list names it"
    assert res["message"] == (f"{INSTALL}; then the host's planner decides, from the head of main (now "
                              f"{short_sha(HEAD)}){WATCH}; the checkout is at {short_sha(OLDER)}, not the deployed "
                              f"{short_sha(DEPLOYED)}; {bad}"), res
    assert (res["from"], res["to"], res["plan"]["bad"]) == (OLDER, HEAD, True), res
    assert res["warnings"] == [PREFLIGHT, bad], res  # --json carries the same
    status({"deployed": None, "head": None}, monkeypatch)
    res = dry_run(host, trigger="rollback", clear_pin=False).result
    assert (res["from"], res["to"]) == (None, None), res


# What only the host's planner decides (host/plan.py): its results and the
# words of its plans (up to date, a move, a restart, a refusal, a hold)
VERDICTS = re.compile(r"up to date|would deploy|would restart|->|restarts|finishes it|not running|noop|"
                      r"tries it again|cron skips|staying on|would stop|would_deploy|would_abort")


@pytest.mark.parametrize("case", [
    dict(status={"deployed": DEPLOYED, "head": DEPLOYED}, ref=DEPLOYED),  # the planner's noop, or a restart
    dict(status={"deployed": DEPLOYED, "head": DEPLOYED, "in_progress": {"run_id": "r0", "trigger": "cron",
                                                                         "step": "restart"}}, ref=DEPLOYED),
    dict(status={"deployed": DEPLOYED, "head": DEPLOYED,
                 "services": [{"name": "voice-meeting-discord-bot.service", "active": False}]}, ref=DEPLOYED),
    dict(status={"deployed": DEPLOYED, "head": HEAD, "bad": [HEAD]}, ref=None),  # moved, and a bad head
    dict(status={"deployed": DEPLOYED, "head": DEPLOYED, "bad": [HEAD]}, ref=None),  # a move onto a bad commit
    dict(status={"deployed": DEPLOYED, "head": DEPLOYED}, ref=None, trigger="rollback"),
])
def test_its_lines_never_claim_an_outcome_the_planner_decides(host, older_fabops, monkeypatch, capsys, case):
    """Every output of a dry run before the install, human and --json: the
    install and facts, never a verdict. Before, `--ref DEPLOYED` said
    `up to date at …` (noop), the branch head `would deploy A -> B; … this
    deploy tries it again`, and a service down `the host's planner
    restarts it`."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    status(case["status"], monkeypatch)
    trigger = case.get("trigger", "deploy")
    outcome = dry_run(host, ref=case["ref"], trigger=trigger, clear_pin=False)
    assert outcome.result["result"] == "would_install" and outcome.result["message"].startswith(
        f"{INSTALL}; then the host's planner decides, from "), outcome.result
    capsys.readouterr()
    for as_json in (False, True):
        _report(FanoutResult([HostResult(host.name, value=outcome)]), as_json, task=trigger, dry_run=True)
    text = capsys.readouterr().out
    said = " ".join(text.split())
    assert not VERDICTS.search(said.replace("→", " ")), said
    assert json.loads(text[text.index("{"):])["hosts"][host.name]["result"] == "would_install", text


def test_its_pin_line_is_what_a_run_that_goes_ahead_does(host, older_fabops, capsys, monkeypatch):
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    outcome = dry_run(host, trigger="rollback", clear_pin=False)
    capsys.readouterr()
    _report(FanoutResult([HostResult(host.name, value=outcome)]), False, task="rollback", dry_run=True)
    text = " ".join(capsys.readouterr().out.split())
    assert ("[find-to-do] if the host's planner goes ahead, it pins the host to the commit it picks (cron stays "
            "on it until") in text, text
    assert "would pin" not in text and short_sha(HEAD) not in text, text


@pytest.mark.parametrize("width", (80, 200))
def test_golden_at_80_and_200_columns(host, older_fabops, capsys, monkeypatch, width):
    """The whole output at both widths: a known-bad head and a moved
    checkout said as facts, the message whole and wrapped (cut at 80
    columns it kept `then the host's planner decides, fro…`)."""
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report
    from tests.test_golden import check, render

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    status({"deployed": DEPLOYED, "head": OLDER, "bad": [HEAD]}, monkeypatch)
    outcome = dry_run(host)
    text = render(capsys, monkeypatch, width, _report, FanoutResult([HostResult(host.name, value=outcome)]), False,
                  dry_run=True)
    said = " ".join(text.split())
    assert "would_install" in said and "the host's planner decides, from the head of main" in said, text
    assert said.endswith("failed its gate before: the host's known-bad list names it"), text
    assert not VERDICTS.search(said.replace("→", " ")), text
    check("deploy-dry-run-uninstalled", width, text)


@pytest.mark.parametrize("watches, said", [
    ((2, 2), "; if it goes ahead, it would watch bot, api for 2 s after the gate, and roll back if one dies or fails "
             "its check there"),
    ((0, 5), "; if it goes ahead, it would watch api for 5 s after the gate, and roll back if one dies or fails its "
             "check there"),
    ((10, 30), "; if it goes ahead, it would watch bot, api for up to 30 s after the gate, and roll back if one dies "
               "or fails its check there"),
    ((0, 0), ""),  # no watch: the real run skips it, and no dry run says one
])
def test_it_says_the_watch_hosts_yml_gives_as_the_installed_dry_run_does(older_fabops, watches, said):
    """#24: before fabops was on the host, deploy --dry-run said nothing of
    the watch the real run keeps after the gate (a new user could not tell
    whether it would watch, nor for how long). It says it from hosts.yml,
    in the installed dry run's words (host/would.watched), which
    host/dry_run.actions lists after the restarts."""
    from fabops.host.dry_run import actions
    from fabops.host.plan import Plan
    from fabops.host.would import watched

    host = inventory.loads("hosts:\n  h:\n    app: {path: /srv/app}\n    services:\n"
                           + "".join(f"      - {{name: {n}, watch: {w}}}\n" for n, w in zip(("bot", "api"), watches)),
                           "h.yml").hosts["h"]
    res = dry_run(host).result
    assert res["message"] == (f"{INSTALL}; then the host's planner decides, from the head of main "
                              f"(now {short_sha(HEAD)}){said}"), res
    deploy = Plan("deploy", "", f"deploy {short_sha(DEPLOYED)} -> {short_sha(HEAD)}", HEAD, DEPLOYED,
                  services=("bot", "api"))
    woulds = list(actions(host, deploy))
    assert woulds[-1] == watched(host.services) if said else all(w.action != "watch" for w in woulds), woulds
    if said:
        assert said.endswith(f"would watch {woulds[-1].target} {woulds[-1].why}"), woulds
