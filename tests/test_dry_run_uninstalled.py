"""A dry run on a host whose fabops is older than the laptop's (issue #24):
the host's planner cannot run, so the laptop says what it can know. A
rollback without --to named the branch head as its target, where no
rollback goes: the host's planner picks a rollback's commit after the
install (host/plan.py, rollback_target), and the dry run says so instead
of naming one. --ref (a rollback's --to) is the target when given; a
deploy's is the branch head."""
from types import SimpleNamespace

import pytest

from fabops import inventory
from fabops.deploy import DeployOptions, DeployOutcome, _dry_run
from fabops.install import InstallResult
from fabops.shortsha import short_sha

DEPLOYED = "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"
OLDER = "3f2a9c1d7e6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
HEAD = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"  # the branch head on the remote


@pytest.fixture
def host():
    return inventory.loads("hosts:\n  find-to-do:\n    app: {path: /srv/app}\n    services:\n"
                           "      - {name: voice-meeting-discord-bot.service}\n", "h.yml").hosts["find-to-do"]


@pytest.fixture
def older_fabops(monkeypatch):
    """The host has an older fabops; its status says DEPLOYED; ls-remote says HEAD."""
    import fabops.deploy
    import fabops.install
    import fabops.remote

    said = "would upgrade from 0.9.0 fabops 1.0.0"
    monkeypatch.setattr(fabops.install, "ensure_installed",
                        lambda c, h, **kw: InstallResult(True, "1.0.0", "ab" * 32, "3.9", said))
    monkeypatch.setattr(fabops.remote, "gather_status", lambda c, h: {"deployed": DEPLOYED, "head": DEPLOYED})
    calls = []

    class Remote:
        def run(self, cmd, *a, **kw):
            calls.append(str(cmd))
            return SimpleNamespace(ok=True, stdout=f"{HEAD}\trefs/heads/main\n", stderr="")

    monkeypatch.setattr(fabops.deploy.Target, "of", classmethod(lambda cls, c, h: Remote()))
    return calls


def dry_run(host, **opts):
    return _dry_run(None, host, DeployOptions(dry_run=True, **opts), DeployOutcome(host.name, "r1"), lambda e: None)


def test_a_rollback_names_no_target_the_hosts_planner_has_not_picked(host, older_fabops):
    res = dry_run(host, trigger="rollback", clear_pin=False).result
    assert (res["result"], res["from"], res["to"], res["exit_code"]) == ("would_deploy", DEPLOYED, None, 0), res
    assert short_sha(HEAD) not in res["message"] and "planner would pick the commit to roll back to" in \
        res["message"], res
    assert res["message"].startswith("would upgrade from 0.9.0 fabops 1.0.0; then "), res
    assert not older_fabops  # no ls-remote: the branch head is no rollback's target


def test_a_rollback_to_a_commit_and_a_deploy_name_theirs(host, older_fabops):
    res = dry_run(host, trigger="rollback", ref=OLDER, clear_pin=False).result
    assert (res["result"], res["to"]) == ("would_deploy", OLDER), res
    assert f"would deploy {short_sha(DEPLOYED)} -> {short_sha(OLDER)}" in res["message"], res
    res = dry_run(host).result
    assert (res["result"], res["to"]) == ("would_deploy", HEAD), res
    assert len(older_fabops) == 1 and "ls-remote" in older_fabops[0]


def test_its_pin_line_names_no_commit(host, older_fabops, capsys, monkeypatch):
    from fabops.fanout import FanoutResult, HostResult
    from fabops.tasks.deploy import _report

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    outcome = dry_run(host, trigger="rollback", clear_pin=False)
    capsys.readouterr()
    _report(FanoutResult([HostResult(host.name, value=outcome)]), False, task="rollback", dry_run=True)
    text = " ".join(capsys.readouterr().out.split())
    assert "[find-to-do] would pin to the commit it picks (cron stays on it until" in text, text
    assert "would pin to -" not in text and short_sha(HEAD) not in text, text


def test_with_nothing_deployed_it_names_no_commit_at_all(host, older_fabops, monkeypatch):
    import fabops.remote

    monkeypatch.setattr(fabops.remote, "gather_status", lambda c, h: {"deployed": None, "head": None})
    res = dry_run(host, trigger="rollback", clear_pin=False).result
    assert (res["from"], res["to"]) == (None, None) and "or refuse if it finds none:" in res["message"], res


def test_a_deploy_gives_a_verdict_from_resolved_commits_only(host, older_fabops, monkeypatch):
    """The host's planner decides after the install (§8, decide once): the
    laptop compares full SHAs only. Before, `--ref` as a short SHA or a
    branch was `would deploy A -> 9b8c7d6e5f` even when it named the
    deployed commit, and a head marked bad was a plain move."""
    import fabops.remote

    res = dry_run(host, ref=DEPLOYED[:7]).result
    assert (res["result"], res["to"], res["plan"]["to"]) == ("would_deploy", None, None), res
    assert res["message"].endswith(f"then the host's planner decides, from --ref {DEPLOYED[:7]}: this dry run "
                                   "cannot resolve it before fabops is on the host"), res
    assert "would deploy" not in res["message"] and not older_fabops, "no ls-remote for a --ref"
    res = dry_run(host, ref="main").result
    assert res["to"] is None and "from --ref main: this dry run cannot resolve it" in res["message"], res
    res = dry_run(host, ref=DEPLOYED).result
    assert (res["result"], res["to"]) == ("noop", DEPLOYED) and res["message"].endswith(
        f"up to date at {short_sha(DEPLOYED)}"), res
    res = dry_run(host).result
    assert res["message"].endswith(f"from the head of main: would deploy {short_sha(DEPLOYED)} -> {short_sha(HEAD)}")
    monkeypatch.setattr(fabops.remote, "gather_status", lambda c, h: {"deployed": DEPLOYED, "bad": [HEAD]})
    res = dry_run(host).result
    assert (res["result"], res["to"]) == ("would_deploy", HEAD), res
    # review3 #2: a person's deploy goes ahead on a bad commit (host/plan.known_bad), and says so
    assert res["message"].endswith(f"would deploy {short_sha(DEPLOYED)} -> {short_sha(HEAD)}; {short_sha(HEAD)} "
                                   "failed its gate before (cron skips it); this deploy tries it again"), res
    res = dry_run(host, trigger="rollback", ref=HEAD, clear_pin=False).result
    assert res["message"].endswith("(cron skips it); this rollback tries it again"), res


def test_a_head_ls_remote_cannot_read_is_said_so(host, monkeypatch):
    import fabops.deploy
    import fabops.install
    import fabops.remote

    monkeypatch.setattr(fabops.install, "ensure_installed",
                        lambda c, h, **kw: InstallResult(True, "1.0.0", "ab" * 32, "3.9", "would install"))
    monkeypatch.setattr(fabops.remote, "gather_status", lambda c, h: {"deployed": DEPLOYED})

    class Remote:
        def run(self, cmd, *a, **kw):
            return SimpleNamespace(ok=False, stdout="", stderr="fatal: could not read from remote")

    monkeypatch.setattr(fabops.deploy.Target, "of", classmethod(lambda cls, c, h: Remote()))
    res = dry_run(host).result
    assert (res["result"], res["to"]) == ("would_deploy", None), res
    assert res["message"] == ("would install; then the host's planner decides, from the head of main: this dry run "
                              "could not read it (git ls-remote failed)"), res


def test_a_moved_checkout_a_cut_off_run_or_a_service_down_is_no_noop(host, older_fabops, monkeypatch):
    """review3 #1: the laptop made its own call where the host's planner
    (host/plan.py) differs. With the checkout moved (status deployed=G,
    head=B after a crash), `--ref G` said `up to date at G` and the branch
    head B said `would deploy G -> B`: the run goes from the checkout (B),
    and the planner decides. A run cut off or a service down on the
    deployed commit is a deploy or a restart, not a noop."""
    import fabops.remote

    def status(**s):
        monkeypatch.setattr(fabops.remote, "gather_status", lambda c, h: {"deployed": DEPLOYED, **s})

    status(head=HEAD, bad=[HEAD])
    moved = f"the checkout is at {short_sha(HEAD)}, not the deployed {short_sha(DEPLOYED)}: the host's planner decides"
    for ref in (DEPLOYED, None):
        res = dry_run(host, ref=ref).result
        assert (res["result"], res["from"], res["plan"]["from"]) == ("would_deploy", HEAD, HEAD), res
        assert res["message"].endswith(moved) and "up to date" not in res["message"], res
    status(head=DEPLOYED, in_progress={"run_id": "r0", "trigger": "cron", "step": "restart"})
    res = dry_run(host, ref=DEPLOYED).result
    assert (res["result"], res["from"]) == ("would_deploy", DEPLOYED), res
    assert res["message"].endswith(f"run r0 (cron) was cut off at step restart: the host's planner finishes it, "
                                   f"deploying {short_sha(DEPLOYED)} again"), res
    status(head=DEPLOYED, services=[{"name": "voice-meeting-discord-bot.service", "active": False}])
    res = dry_run(host, ref=DEPLOYED).result
    assert res["result"] == "would_deploy" and res["message"].endswith(
        f"voice-meeting-discord-bot.service not running at {short_sha(DEPLOYED)}: the host's planner restarts it, "
        "or stops if the restart budget is spent"), res
    status(head=DEPLOYED, services=[{"name": "voice-meeting-discord-bot.service", "active": True}])
    assert dry_run(host, ref=DEPLOYED).result["result"] == "noop"
