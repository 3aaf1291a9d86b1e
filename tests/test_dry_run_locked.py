"""New-user trial (#24): `local-update --dry-run` during another run's
watch printed `local: locked: would stop: locked: deploy by …` ("locked"
twice), then `restart: bot`, a write it would not make (exit 4); `deploy
--dry-run` listed `would checkout` and `would restart` beside its
`locked` result. The real run stops at the lock before it acts, so its
dry run says the lock's line once and lists no action but `would stop`
(host/dry_run.py), and the real run's line says `locked` once too
(host/report.said_once). On the sandbox (`connection: local`), with the
host lock held here as another run's watch holds it."""
import json
import time

from fabops.host.lock import HostLock
from tests.conftest import run_cli

WATCHING = {"actor": "root@vm", "trigger": "deploy", "phase": "watch", "run_id": "r9", "pid": 1}


def test_a_dry_run_refused_for_the_lock_says_so_once_and_lists_no_action(sandbox, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert sandbox.result()[0] == 0
    sandbox.origin.good("2")
    inv = str(sandbox.inventory)
    holder = dict(WATCHING, target=sandbox.head(), watch_ends=time.time() + 60)
    with HostLock(str(sandbox.home / "lock"), holder).acquire():
        dry = run_cli("local-update", "-i", inv, "-H", "local", "--dry-run")
        said = dry.stdout + dry.stderr
        assert dry.returncode == 4 and said.count("locked") == 1, said
        assert "local: locked: deploy by root@vm" in said and "restart:" not in said and "rules:" not in said, said
        js = run_cli("local-update", "-i", inv, "-H", "local", "--dry-run", "--json")
        res = json.loads(js.stdout)["hosts"]["local"]
        assert (js.returncode, res["result"]) == (4, "locked"), js.stdout
        assert res["message"].startswith("locked: deploy by root@vm") and res["message"].count("locked") == 1, res
        assert [w["action"] for w in res["plan"]["would"]] == ["stop"], res["plan"]
        assert res["plan"]["would"][0]["why"] == res["message"] and not res["plan"]["restart"], res["plan"]
        assert not res["plan"]["rules"], res["plan"]
        # a deploy waits for a watch; with --wait 0 it is refused as well
        dep = run_cli("deploy", "-i", inv, "-H", "local", "--dry-run", "--wait", "0")
        assert dep.returncode == 4, dep.stdout + dep.stderr
        assert "would checkout" not in dep.stdout and "would restart" not in dep.stdout, dep.stdout
        assert "[local] would stop: locked: deploy by root@vm" in dep.stdout, dep.stdout
        real = run_cli("local-update", "-i", inv, "-H", "local")
        said = real.stdout + real.stderr
        assert real.returncode == 4 and said.count("locked") == 1 and "local: locked: deploy by" in said, said
