"""`inv promote` on booted hosts (systemd tier, issue #28; docs/environments.md,
"Promote"): two bookworm containers, stg1 in the `staging` environment
following `develop` and prod1 in `production` following `main`, booted from
one image and cloned from one origin, the bot a systemd unit on each, reached
over SSH as ec2-user. Both containers live for the module (a boot is most of
the cost); the cases run in order, one deploy each:

(a) a commit healthy on staging: promote moves production to it, pins it
    there, and both hosts' histories say so;
(b) a commit that crashes on staging (rolled back there, marked bad): promote
    refuses, exit 2, and production is untouched (same commit, same state,
    same unit PID);
(c) promote while staging's deploy is in its watch window (its lock held by
    that run, started in the background): promote waits for the watch to
    end, as a deploy waits, then promotes what staging now runs healthy;
(d) examples/workflows/two-stage.yml's `run:` steps as written (the journey
    tier's machinery, tests/test_journey.py): its staging job deploys a
    push to develop, its promote job promotes it.
"""
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests import test_systemd_tier as tier
from tests.conftest import ROOT, check_json_output
from tests.harness import container
from tests.harness.sandbox import Origin, git
from tests.test_journey import TASKS_PY, run_workflow_job
from tests.test_systemd_tier import UNIT, bot_service

# the tier's prepared bookworm rootfs (module-scoped): both boots overlay it
base = tier.base

pytestmark = pytest.mark.systemd
HOSTS = ("stg1", "prod1")
STATE = "~/.fabops/voice-meeting-bot"
# staging's watch is long enough for case (c) to see its lock held in it
WATCH = {"stg1": "6s", "prod1": "2s"}


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """One origin for both hosts: `main` (production's) and `develop`
    (staging's) at v1; `push` commits to develop and moves main along."""
    o = Origin(tmp_path_factory.mktemp("origin"))
    git("checkout", "--quiet", "-b", "develop", cwd=o.work)
    git("push", "--quiet", "origin", "develop", cwd=o.work)
    o.branch = "develop"
    return o


@pytest.fixture(scope="module")
def boxes(base, origin, tmp_path_factory):
    """stg1 and prod1, booted for the module and stopped at its end, also
    when a boot or a test fails."""
    booted = {}
    try:
        for name in HOSTS:
            booted[name] = container.boot(base, {str(origin.bare): "/srv/origin.git"},
                                          tmp_path_factory.mktemp(f"nspawn-{name}"))
        yield booted
    finally:
        # both at once: each container's shutdown takes most of a boot's time
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            list(pool.map(container.Container.stop, booted.values()))


class Fleet:
    """The two hosts as this test's laptop sees them: ~/.ssh/config aliases
    and a hosts.yml with the two environment groups. The laptop's fabops is
    the user's path's clean venv (tests/test_journey.py), not $FABOPS_WHEEL:
    the hosts then hold the wheel that fabops rebuilds from its installed
    package (fabops/install.py, local_wheel), as the workflow's runner will,
    so the workflow's deploys find it installed and fetch nothing."""

    def __init__(self, boxes, origin, client_key, home: Path, tmp: Path, venv: Path):
        self.origin, self.venv = origin, venv
        ssh = home / ".ssh"
        (ssh / "config").write_text("".join(
            f"Host {n}\n  HostName {boxes[n].address}\n  User ec2-user\n  IdentityFile {client_key}\n" for n in HOSTS))
        (ssh / "known_hosts").write_text("".join(f"{boxes[n].address} {boxes[n].host_key}\n" for n in HOSTS))
        self.inventory = tmp / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({
            "defaults": {"user": "ec2-user", "app": {"path": "/home/ec2-user/voice-meeting-bot"},
                         "deps": [{"when": ["requirements.txt"], "run": "sh install-deps.sh"}]},
            "hosts": {n: {"services": [bot_service("30s", WATCH[n])]} for n in HOSTS},
            "groups": {
                "staging": {"environment": True, "hosts": ["stg1"], "app": {"branch": "develop"}},
                "production": {"environment": True, "hosts": ["prod1"], "app": {"branch": "main"}}},
        }, sort_keys=False))

    def on(self, name: str, command: str) -> str:
        # OpenSSH reads the passwd home, not $HOME: point it at the test's files
        ssh = Path(os.environ["HOME"]) / ".ssh"
        return subprocess.run(["ssh", "-F", str(ssh / "config"), "-o", "BatchMode=yes",
                               "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}", name, command],
                              capture_output=True, text=True, check=True, timeout=120).stdout.strip()

    def start(self, *args) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != "FABOPS_WHEEL"}
        return subprocess.Popen([str(self.venv / "bin/python"), "-m", "fabops.cli", *args, "-i", str(self.inventory)],
                                # not this checkout: `-m` there would import its fabops, not the venv's
                                cwd=self.inventory.parent, env={**env, "COLUMNS": "200"}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def fab(self, *args) -> subprocess.CompletedProcess:
        p = self.start(*args)
        out, err = p.communicate(timeout=600)
        r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        check_json_output(args, r)
        return r

    def commit(self, behaviour: str, message: str) -> str:
        sha = self.origin.push(message, {"VERSION": message + "\n", "BEHAVIOUR": behaviour + "\n"})
        git("push", "--quiet", "origin", "develop:main", cwd=self.origin.work)
        return sha

    def promote(self, *args):
        return self.fab("promote", "--from", "staging", "--to", "production", "--min-age", "0", "--offline", *args)

    def state(self, name: str) -> dict:
        return json.loads(self.on(name, f"cat {STATE}/state.json"))

    def history(self, name: str) -> list:
        return [json.loads(x) for x in self.on(name, f"cat {STATE}/history.jsonl").splitlines()]

    def pid(self, name: str) -> str:
        return self.on(name, f"systemctl show -p MainPID --value {UNIT}")


_set_up = []  # the hosts are set up once, by whichever case runs first


@pytest.fixture
def fleet(boxes, origin, client_key, isolated_home, deploy_env, user_venv, tmp_path):
    f = Fleet(boxes, origin, client_key, isolated_home, tmp_path, user_venv)
    if not _set_up:
        for n in HOSTS:
            f.on(n, "git clone --quiet /srv/origin.git ~/voice-meeting-bot && "
                    "printf 'DISCORD_TOKEN=x\\nPORT=3003\\n' > ~/voice-meeting-bot/.env")
        r = f.fab("setup", "--yes", "--offline", "-H", "staging,production", "--json")
        assert r.returncode in (0, 1), r.stdout + r.stderr
        r = f.fab("deploy", "--offline", "-H", "staging,production", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        _set_up.append(True)
    return f


def test_a_commit_healthy_on_staging_is_promoted_and_pinned(fleet):
    v2 = fleet.commit("ok", "v2")
    r = fleet.fab("deploy", "--offline", "-H", "staging", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    r = fleet.promote("--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["promote"]["candidate"] == v2 and doc["hosts"]["prod1"]["trigger"] == "promote", doc
    prod = fleet.state("prod1")
    assert prod["deployed"] == v2 and prod["pin"] == v2, prod
    assert prod["pin_reason"].startswith("promoted from staging"), prod
    assert fleet.on("prod1", "git -C ~/voice-meeting-bot rev-parse HEAD") == v2
    assert fleet.on("prod1", f"systemctl is-active {UNIT}") == "active"
    stg = fleet.history("stg1")[-1]
    assert (stg["trigger"], stg["result"]) == ("promote", "promoted"), stg
    assert fleet.history("prod1")[-1]["trigger"] == "promote"


def test_a_commit_that_crashed_on_staging_is_refused_and_production_untouched(fleet):
    before, pid = fleet.state("prod1"), fleet.pid("prod1")
    good = fleet.state("stg1")["deployed"]
    bad = fleet.commit("crash", "v3 crashes")
    r = fleet.fab("deploy", "--offline", "-H", "staging", "--json")
    assert r.returncode == 2, r.stdout + r.stderr  # rolled back on staging, marked bad
    r = fleet.promote()
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{bad[:10]}, newer than {good[:10]}, is marked bad" in r.stdout, r.stdout
    assert fleet.state("prod1") == before and fleet.pid("prod1") == pid


def test_promote_waits_for_a_staging_deploy_in_its_watch(fleet, monkeypatch):
    # a person's deploy (trigger `deploy`): under CI=true, as .ci/run sets
    # it, the background deploy would be a `ci` run
    monkeypatch.delenv("CI", raising=False)
    v4 = fleet.commit("ok", "v4")
    deploy = fleet.start("deploy", "--offline", "-H", "staging")
    try:
        # the lock file names its holder; "watch" from the gate's pass to the
        # watch's end (fabops/host/pipeline.py)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and deploy.poll() is None:
            held = fleet.on("stg1", f"cat {STATE}/lock 2>/dev/null || true")
            if '"watch"' in held and v4 in held:
                break
            time.sleep(0.3)
        assert deploy.poll() is None, "staging's deploy ended before its watch was seen: " + deploy.stdout.read()
        r = fleet.promote()
        out, err = deploy.communicate(timeout=300)
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()
    assert deploy.returncode == 0, out + err
    assert "waiting for deploy by" in r.stdout + r.stderr, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.state("prod1")["deployed"] == v4 and fleet.state("prod1")["pin"] == v4


def test_the_two_stage_workflow_runs_as_written(fleet, boxes, client_key, fabops_wheel, tmp_path):
    """examples/workflows/two-stage.yml's `run:` steps, as written, on a
    runner of their own for each job (tests/test_journey.py's
    run_workflow_job): a push to develop runs the staging job, "Run
    workflow" on main the promote job, against these two hosts. The app's
    checkout holds tasks.py and a hosts.yml naming each host by its address
    (the workflow's SSH config step writes one alias, find-to-do, and the
    key and known_hosts for every host), staging's promote_after cut to a
    second: the promote step runs `inv promote` with no --min-age."""
    path = ROOT / "examples/workflows/two-stage.yml"
    jobs = yaml.safe_load(path.read_text())["jobs"]
    assert jobs["staging"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/develop'"
    assert jobs["promote"]["if"] == "github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main'"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "tasks.py").write_text(TASKS_PY)
    inventory = yaml.safe_load(fleet.inventory.read_text())
    for n in HOSTS:
        inventory["hosts"][n]["address"] = boxes[n].address
    inventory["groups"]["staging"]["promote_after"] = "1s"
    (checkout / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    secrets = {"DEPLOY_SSH_KEY": client_key.read_text(),
               "DEPLOY_KNOWN_HOSTS": "".join(f"{boxes[n].address} {boxes[n].host_key}\n" for n in HOSTS),
               "DEPLOY_SSH_CONFIG": f"HostName {boxes['stg1'].address}\nUser ec2-user"}

    v5 = fleet.commit("ok", "v5")
    run_workflow_job(path, "staging", secrets, tmp_path / "runner-staging", checkout, fabops_wheel,
                     "refs/heads/develop", "push")
    assert fleet.state("stg1")["deployed"] == v5
    time.sleep(1)  # staging's promote_after
    run_workflow_job(path, "promote", secrets, tmp_path / "runner-promote", checkout, fabops_wheel,
                     "refs/heads/main", "workflow_dispatch")
    prod = fleet.state("prod1")
    assert prod["deployed"] == v5 and prod["pin"] == v5, prod
    last = fleet.history("prod1")[-1]
    assert last["trigger"] == "promote" and last["actor"].startswith("journey-bot"), last
