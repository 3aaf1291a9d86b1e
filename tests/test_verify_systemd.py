"""Only verified commits ship (#29; docs/security.md, "Verified commits")
on the booted bookworm container (tests/test_systemd_tier.py's host:
systemd, sudo and the non-root ec2-user for real; git 2.39), deployed from
this machine over SSH, with real ed25519 keys and SSH-signed commits:
setup installs the allowed-signers file root-owned where the deploy user
cannot change it; a signed commit ships; an unsigned one and one signed
by another key are held by cron (skipped_unverified, the unit not
restarted) and refused to a person's deploy; `--ref X --allow-unverified`
ships one and the host's history records it; a deploy whose hosts.yml
drops `verify:` does not turn the check off."""
import json

import pytest
import yaml

from tests import test_systemd_tier as tier
from tests.test_systemd_tier import UNIT, fab, first_deploy, on_host
from tests.test_verify_sandbox import keypair, push_signed  # the same keys and signed commits

# the tier's booted bookworm host, its origin and its find-to-do alias
base, box, origin, alias = tier.base, tier.box, tier.origin, tier.alias

pytestmark = pytest.mark.systemd
FILE = "/etc/fabops/voice-meeting-bot/allowed_signers"
CRON = ("~/.fabops/voice-meeting-bot/venv/bin/fabops local-update -i ~/.fabops/voice-meeting-bot/host.yml "
        "--json --trigger cron")


def _main_pid() -> str:
    return on_host(f"systemctl show -p MainPID --value {UNIT}").stdout.strip()


def _cron() -> dict:
    r = on_host(CRON, check=False)
    return json.loads(r.stdout)["hosts"]["find-to-do"] | {"code": r.returncode}


def _deploy(inv, *args) -> dict:
    r = fab(inv, "deploy", "--json", *args)
    return json.loads(r.stdout)["hosts"]["find-to-do"] | {"code": r.returncode}


def _with_verify(inv, signers) -> None:
    data = yaml.safe_load(inv.read_text())
    host = data["hosts"]["find-to-do"]
    if signers:
        host["verify"] = {"signers": signers}
    else:
        host.pop("verify", None)
    inv.write_text(yaml.safe_dump(data, sort_keys=False))


def test_only_signed_commits_ship_on_a_booted_host(alias, origin, tmp_path, monkeypatch):
    # a person's deploys, as test_deploy_ssh's: under .ci/run's CI=true a deploy
    # is CI's, whose settings (this hosts.yml is in no checkout) a host that
    # requires signed commits does not install (docs/security.md)
    monkeypatch.delenv("CI", raising=False)
    inv = alias
    first_deploy(inv)  # the origin's first commit is unsigned: deployed before the host asks for signatures
    alice, mallory = keypair(tmp_path, "alice"), keypair(tmp_path, "mallory")
    _with_verify(inv, [open(alice + ".pub").read().strip()])
    # a new signer needs a person's yes: without a terminal, refused (exit 78) and nothing written
    r = fab(inv, "setup", "--yes", "--offline", "--json")
    assert r.returncode == 78, r.stdout + r.stderr
    (item,) = [i for i in json.loads(r.stdout)["hosts"]["find-to-do"]["items"] if i["name"] == "verified commits"]
    assert item["status"] == "refused" and "(alice@example)" in item["message"] and "--accept-signers" in item["message"]
    assert on_host(f"test -e {FILE}", check=False).returncode != 0
    r = fab(inv, "setup", "--yes", "--offline", "--json", "--accept-signers")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    # root's file, 0644, in root's directory: the deploy user cannot change, replace or remove it
    assert on_host(f"stat -c '%U:%G %a' {FILE} /etc/fabops/voice-meeting-bot").stdout.split("\n")[:2] == [
        "root:root 644", "root:root 755"]
    assert on_host(f"test -w {FILE} || test -w /etc/fabops/voice-meeting-bot", check=False).returncode != 0
    assert on_host(f"rm -f {FILE}", check=False).returncode != 0
    assert "alice@example" in on_host(f"cat {FILE}").stdout

    signed = push_signed(origin, alice, "v2 signed by alice", "2")
    res = _deploy(inv)
    assert (res["code"], res["result"], res["to"]) == (0, "deployed", signed), res
    pid = _main_pid()

    unsigned = origin.push("v3 unsigned", {"VERSION": "3\n"})
    res = _cron()
    assert (res["code"], res["result"], res["to"]) == (1, "skipped_unverified", unsigned), res
    forged = push_signed(origin, mallory, "v4 signed by mallory", "4")
    res = _cron()
    assert (res["code"], res["result"], res["to"]) == (1, "skipped_unverified", forged), res
    assert _main_pid() == pid  # nothing restarted
    res = _deploy(inv)
    assert (res["code"], res["result"]) == (2, "aborted") and "--allow-unverified" in res["message"], res

    # a hosts.yml without verify: (a push may delete it) is installed by the next deploy; the file still decides
    _with_verify(inv, None)
    res = _deploy(inv)
    assert (res["code"], res["result"]) == (2, "aborted"), res
    res = _deploy(inv, "--ref", forged, "--allow-unverified")
    assert (res["code"], res["result"]) == (1, "deployed"), res  # exit 1: its warning (docs/errors.md)
    history = [json.loads(ln) for ln in on_host("cat ~/.fabops/voice-meeting-bot/history.jsonl").stdout.splitlines()]
    (rec,) = [h for h in history if h.get("run_id") == res["run_id"]]
    assert rec["to"] == forged and any("--allow-unverified" in w for w in rec["warnings"]), rec
