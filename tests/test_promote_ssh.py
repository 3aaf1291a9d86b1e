"""`inv promote` over SSH (ssh tier; issue #28): two real sshd hosts from
one origin, staging following `develop` and production following `main`.
Each staging host is read in one round trip, the ancestry is asked of a
production host where its git data is, and production is deployed as
`deploy --ref` deploys it: the same install, pipeline, pin and histories as
the sandbox test (tests/test_promote_sandbox.py), through the transport
the real fleet uses."""
import json

import pytest
import yaml

from tests.conftest import run_cli
from tests.harness.sandbox import Origin, git
from tests.harness.sshd import free_port

pytestmark = pytest.mark.ssh


class Fleet:
    def __init__(self, sshd_factory, base):
        self.origin = Origin(base)
        git("checkout", "--quiet", "-b", "develop", cwd=self.origin.work)
        git("push", "--quiet", "origin", "develop", cwd=self.origin.work)
        self.origin.branch = "develop"
        self.hosts, entries = {}, {}
        for name in ("stg", "prod"):
            host, port = sshd_factory("127.0.0.1"), free_port()
            host.ssh(f"git clone --quiet {self.origin.bare} ~/app && "
                     f"printf 'DISCORD_TOKEN=s3cr3t-token-value\\nPORT={port}\\n' > ~/app/.env")
            svc = {"name": "bot", "manager": "process", "command": "python3 app.py", "port": port,
                   "check": {"url": f"http://127.0.0.1:{port}/health"}, "timeout": "20s", "settle": "300ms",
                   "watch": "500ms"}
            entries[name] = host.inventory_entry(app={"path": "~/app"}, services=[svc],
                                                 deps=[{"when": ["requirements.txt"], "run": "sh install-deps.sh"}])
            self.hosts[name] = host
        self.inventory = base / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"hosts": entries, "groups": {
            "staging": {"environment": True, "hosts": ["stg"], "app": {"branch": "develop"}},
            "production": {"environment": True, "hosts": ["prod"], "app": {"branch": "main"}}}}, sort_keys=False))

    def commit(self, behaviour: str, message: str) -> str:
        sha = self.origin.push(message, {"VERSION": message + "\n", "BEHAVIOUR": behaviour + "\n"})
        git("push", "--quiet", "origin", "develop:main", cwd=self.origin.work)
        return sha

    def deploy(self, env: str):
        return run_cli("deploy", "-i", str(self.inventory), "-H", env, timeout=300)

    def promote(self, *args):
        return run_cli("promote", "-i", str(self.inventory), "--from", "staging", "--to", "production", *args,
                       timeout=300)

    def state(self, name) -> dict:
        return json.loads(self.hosts[name].path("~/.fabops/app/state.json").read_text())

    def history(self, name) -> list:
        path = self.hosts[name].path("~/.fabops/app/history.jsonl")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fleet(sshd_factory, tmp_path, deploy_env):
    return Fleet(sshd_factory, tmp_path)


def test_promote_over_ssh_moves_production_then_refuses_a_crash(fleet):
    for env in ("staging", "production"):
        r = fleet.deploy(env)
        assert r.returncode == 0, r.stdout + r.stderr
    v2 = fleet.commit("ok", "v2")
    assert fleet.deploy("staging").returncode == 0

    r = fleet.promote("--min-age", "0", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["promote"]["candidate"] == v2 and doc["hosts"]["prod"]["trigger"] == "promote"
    prod = fleet.state("prod")
    assert prod["deployed"] == v2 and prod["pin"] == v2 and prod["pin_reason"].startswith("promoted from staging")
    assert fleet.history("stg")[-1]["result"] == "promoted" and fleet.history("prod")[-1]["trigger"] == "promote"

    before = fleet.state("prod")
    bad = fleet.commit("crash", "v3 crashes")
    assert fleet.deploy("staging").returncode == 2  # rolled back, marked bad
    r = fleet.promote("--min-age", "0")
    assert r.returncode == 2 and f"{bad[:10]}, newer than {v2[:10]}, is marked bad" in r.stdout, r.stdout + r.stderr
    assert fleet.state("prod") == before
