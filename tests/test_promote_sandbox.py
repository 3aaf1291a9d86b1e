"""`promote` end to end on this machine (issue #28): two `connection: local`
sandbox hosts from one origin, staging following `develop` and production
following `main`, driven by the real `fabops` console script. A commit
staging ran healthily goes to production, pinned, recorded on both; a
commit that crashed on staging is refused with exit 2 and production is
left as it was; one not on production's branch is refused unless --force."""
from __future__ import annotations

import json
import sys

import pytest
import yaml

from tests.conftest import require, run_cli
from tests.harness.sandbox import Origin, clone, git, kill_pidfile, local_inventory
from tests.harness.sshd import free_port

pytestmark = pytest.mark.unit


class Pair:
    """stg and prod, each its own checkout, home and port, in one hosts.yml."""

    def __init__(self, base):
        self.origin = Origin(base)
        git("checkout", "--quiet", "-b", "develop", cwd=self.origin.work)
        git("push", "--quiet", "origin", "develop", cwd=self.origin.work)
        hosts = {}
        for name in ("stg", "prod"):
            app, home, port = base / name / "app", base / name / "home", free_port()
            clone(self.origin, app)
            (app / ".env").write_text(f"DISCORD_TOKEN=s3cr3t-token-value\nPORT={port}\n")
            one_host = yaml.safe_load(local_inventory(base / f"{name}.yml", app, home, port).read_text())
            hosts[name] = one_host["hosts"]["local"]
            setattr(self, name, home)
        self.inventory = base / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"hosts": hosts, "groups": {
            "staging": {"environment": True, "hosts": ["stg"], "app": {"branch": "develop"}},
            "production": {"environment": True, "hosts": ["prod"], "app": {"branch": "main"}}}}, sort_keys=False))

    def commit(self, behaviour: str, message: str, to_main: bool = True) -> str:
        """A commit on develop (fast-forwarded onto main too, unless not)."""
        sha = self.origin.push(message, {"VERSION": message + "\n", "BEHAVIOUR": behaviour + "\n"}) \
            if self.origin.branch == "develop" else None
        if sha is None:
            self.origin.branch = "develop"
            sha = self.origin.push(message, {"VERSION": message + "\n", "BEHAVIOUR": behaviour + "\n"})
        if to_main:
            git("push", "--quiet", "origin", "develop:main", cwd=self.origin.work)
        return sha

    def update(self, host: str):
        return run_cli("local-update", "-i", str(self.inventory), "-H", host, "--json", "--trigger", "cron",
                       timeout=120)

    def promote(self, *args):
        return run_cli("promote", "-i", str(self.inventory), "--from", "staging", "--to", "production", *args,
                       timeout=180)

    @staticmethod
    def state(home) -> dict:
        return json.loads((home / "state.json").read_text())

    @staticmethod
    def history(home) -> list:
        path = home / "history.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def stop(self):
        for home in (self.stg, self.prod):
            kill_pidfile(home / "services" / "bot.pid")


@pytest.fixture
def pair(tmp_path):
    require(sys.platform.startswith("linux"), "the process back end needs Linux")
    p = Pair(tmp_path)
    yield p
    p.stop()


def test_a_healthy_staging_commit_is_promoted_pinned_and_recorded_on_both(pair):
    first = pair.origin.head
    assert pair.update("stg").returncode == 0 and pair.update("prod").returncode == 0
    assert pair.state(pair.prod)["deployed"] == first
    v2 = pair.commit("ok", "v2")
    assert pair.update("stg").returncode == 0 and pair.state(pair.stg)["deployed"] == v2

    dry = pair.promote("--min-age", "0", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"candidate {v2[:10]} (dry run)" in dry.stdout and "it is on production's branch" in dry.stdout
    assert pair.state(pair.prod)["deployed"] == first  # a dry run changes nothing

    young = pair.promote()  # the default promote_after, 1h
    assert young.returncode == 2 and "promote needs 1h" in young.stdout, young.stdout + young.stderr

    r = pair.promote("--min-age", "0", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["promote"]["candidate"] == v2 and not doc["promote"]["refused"]
    assert doc["hosts"]["prod"]["result"] == "deployed" and doc["hosts"]["prod"]["trigger"] == "promote"
    assert doc["hosts"]["stg"]["recorded"] is True
    prod = pair.state(pair.prod)
    assert (prod["deployed"], prod["pin"], prod["pin_reason"]) == (v2, v2, prod["pin_reason"])
    assert prod["pin_reason"].startswith("promoted from staging by ")
    assert pair.history(pair.prod)[-1]["trigger"] == "promote" and pair.history(pair.prod)[-1]["to"] == v2
    last = pair.history(pair.stg)[-1]
    assert (last["trigger"], last["result"], last["to"]) == ("promote", "promoted", v2)
    assert "to production (prod)" in last["message"]

    again = pair.promote("--min-age", "0")  # production already runs it: a no-op, still pinned and recorded
    assert again.returncode == 0, again.stdout + again.stderr
    assert "recorded in staging's history: stg (promoted to production)" in again.stdout, again.stdout
    assert f"· prod is already at {v2[:10]}: nothing to deploy there" in again.stdout, again.stdout
    print(again.stdout)


def test_a_commit_that_crashed_on_staging_is_refused_and_production_is_untouched(pair):
    assert pair.update("stg").returncode == 0 and pair.update("prod").returncode == 0
    before = pair.state(pair.prod)
    bad = pair.commit("crash", "v3 crashes")
    assert pair.update("stg").returncode == 2  # rolled back; bad marked
    r = pair.promote("--min-age", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{bad[:10]}, newer than" in r.stdout and "refused: nothing deployed to production" in r.stdout
    assert pair.state(pair.prod) == before and pair.history(pair.stg)[-1]["trigger"] != "promote"


def test_a_commit_not_on_productions_branch_needs_force(pair):
    assert pair.update("stg").returncode == 0 and pair.update("prod").returncode == 0
    v2 = pair.commit("ok", "v2 on develop only", to_main=False)
    assert pair.update("stg").returncode == 0
    r = pair.promote("--min-age", "0")
    assert r.returncode == 2 and "is not an ancestor of origin/main (as prod fetched it)" in r.stdout, r.stdout
    forced = pair.promote("--min-age", "0", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert pair.state(pair.prod)["deployed"] == v2


def test_production_running_a_hotfix_past_the_candidate_is_not_moved_back(pair):
    assert pair.update("stg").returncode == 0 and pair.update("prod").returncode == 0
    v2 = pair.commit("ok", "v2")
    assert pair.update("stg").returncode == 0
    hotfix = pair.commit("ok", "v3 hotfix")  # on main, after v2: shipped to production by hand
    shipped = run_cli("deploy", "-i", str(pair.inventory), "-H", "prod", "--ref", hotfix, timeout=120)
    assert shipped.returncode == 0 and pair.state(pair.prod)["pin"] == hotfix, shipped.stdout + shipped.stderr
    r = pair.promote("--min-age", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"✗ prod runs {hotfix[:10]}, a descendant of {v2[:10]}: promoting would move it back" in r.stdout, r.stdout
    assert f"warning: prod is pinned to {hotfix[:10]}" in r.stdout, r.stdout
    assert pair.state(pair.prod)["deployed"] == hotfix
    forced = pair.promote("--min-age", "0", "--force")  # the run replaces the pin, with promote's reason
    assert forced.returncode == 0, forced.stdout + forced.stderr
    prod = pair.state(pair.prod)
    assert (prod["deployed"], prod["pin"]) == (v2, v2) and prod["pin_reason"].startswith("promoted from staging by ")


def test_not_an_environment_is_a_usage_error(pair):
    r = run_cli("promote", "-i", str(pair.inventory), "--from", "stg", "--to", "production")
    assert r.returncode == 64 and "--from stg: not an environment" in r.stderr, r.stderr
