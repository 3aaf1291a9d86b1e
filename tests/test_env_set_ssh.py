"""env-set, env-unset, env-push over a real sshd (ssh tier; run alone:
`pytest tests/test_env_set_ssh.py`): the change on the SSH channel's stdin,
no value in any argv on this machine or the host (the same machine's `ps`:
tests/test_secrets_argv.ArgvWatch), a backup first, the bot restarted, and
a failing gate that puts the old .env back over SSH (the restore reads no
stdin: one that left input unread would fail the run there)."""
import json

import pytest

from tests.test_env_set import cli
from tests.test_maintenance_ssh import deployed  # noqa: F401 (the fixture)
from tests.test_secrets_argv import ArgvWatch

pytestmark = pytest.mark.ssh
VALUE = "fabops-env-set-ssh-v4lue-3b9f"


def test_env_set_push_unset_and_a_failed_gate_over_ssh(deployed, tmp_path):  # noqa: F811
    inv, env = str(deployed.inventory), deployed.host.path("~/app/.env")
    local = tmp_path / "push.env"
    local.write_text(f"PUSHED={VALUE}-pushed\n")
    mode = env.stat().st_mode
    with ArgvWatch(VALUE) as watch:
        r = cli("env-set", "API_TOKEN", "-i", inv, "--debug", stdin=VALUE + "\n")
        pushed = cli("env-push", str(local), "-i", inv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert VALUE not in r.stdout + r.stderr + pushed.stdout + pushed.stderr
    assert watch.count > 3 and not watch.hits, watch.hits
    assert f"API_TOKEN={VALUE}\n" in env.read_text() and f"PUSHED={VALUE}-pushed" in env.read_text()
    assert env.stat().st_mode == mode, "the old file's mode is kept"
    assert json.loads(pushed.stdout)["hosts"]["h1"]["keys"]["added"] == ["PUSHED"]
    assert deployed.version() == "1"  # restarted and healthy
    listing = cli("backup-env", "-i", inv, "--list").stdout
    assert listing.count("sha256") == 2
    r = cli("env-unset", "PUSHED", "-i", inv)
    assert r.returncode == 0 and "PUSHED" not in env.read_text()
    before = env.read_text()
    r = cli("env-set", "PORT", "-i", inv, "--json", stdin="1\n")
    assert r.returncode == 2, r.stdout + r.stderr
    value = json.loads(r.stdout)["hosts"]["h1"]
    assert "rolled_back" in value, value
    assert value.get("rolled_back") and all(x["ok"] for x in value["ready_after_rollback"])
    assert env.read_text() == before and deployed.version() == "1"
