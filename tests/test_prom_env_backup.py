"""#27: a `backup-env` run on the host (cron's weekly line) counts in the
host's metrics, and the .env backup's age is a gauge
(fabops_env_backup_success_timestamp_seconds); the record-to-count step
that backup, restore and backup-env share is one helper (prom.recorded).
docs/metrics.md, "Which runs count"."""
from __future__ import annotations

import yaml

from fabops.host import prom
from tests.conftest import run_cli
from tests.test_prom import host, parsed, promtool_check, with_textfile


def test_backup_env_on_the_host_counts_and_keeps_its_time(sandbox, tmp_path):
    d = with_textfile(sandbox, tmp_path)
    r = run_cli("backup-env", "-i", str(sandbox.inventory))
    assert r.returncode == 0, (r.stdout, r.stderr)
    text = (d / "fabops-local.prom").read_text()
    families = parsed(text)
    assert families["fabops_runs_total"]["samples"] == [
        ('fabops_host="local",trigger="backup-env",result="backed_up"', 1)]
    [(labels, at)] = families["fabops_env_backup_success_timestamp_seconds"]["samples"]
    assert labels == 'fabops_host="local"' and at > 0
    # no .env: the run fails (exit 2), counts as backup_failed, and the
    # last good backup's time stays
    (sandbox.app / ".env").unlink()
    r = run_cli("backup-env", "-i", str(sandbox.inventory))
    assert r.returncode == 2, (r.stdout, r.stderr)
    # said with the file's whole path, not `no .env at .env`
    assert f"no .env at {sandbox.app}/.env: nothing to back up" in r.stdout + r.stderr
    families = parsed((d / "fabops-local.prom").read_text())
    assert sorted(families["fabops_runs_total"]["samples"]) == [
        ('fabops_host="local",trigger="backup-env",result="backed_up"', 1),
        ('fabops_host="local",trigger="backup-env",result="backup_failed"', 1)]
    assert families["fabops_last_run_exit_code"]["samples"] == [('fabops_host="local",trigger="backup-env"', 2)]
    assert families["fabops_env_backup_success_timestamp_seconds"]["samples"] == [(labels, at)]
    # a refused flag is no run: nothing counted
    r = run_cli("backup-env", "-i", str(sandbox.inventory), "--keep", "0")
    assert r.returncode == 64, (r.stdout, r.stderr)
    assert len(parsed((d / "fabops-local.prom").read_text())["fabops_runs_total"]["samples"]) == 2
    promtool_check(text)


def test_backup_restore_and_backup_env_count_through_one_helper(tmp_path):
    """prom.recorded: a record's result, exit code and duration counted
    under its trigger, and what the run adds kept in the same change."""
    h = host(tmp_path)
    items = [{"ok": True, "size": 10}, {"ok": False, "size": 99}, {"ok": True, "skipped": True, "size": 5}]
    prom.backup_done(h, {"result": "backed_up", "exit_code": 0, "duration": 1.5}, items)
    prom.restore_done(h, {"result": "restore_failed", "exit_code": 5, "duration": 2.0})
    prom.env_backup_done(h, 2, 0.25)
    state = yaml.safe_load(open(tmp_path / "home" / "state.json").read())
    kept = state[prom.KEY]
    assert kept["runs"] == {"backup backed_up": 1, "restore restore_failed": 1, "backup-env backup_failed": 1}
    assert kept["backup"]["size"] == 10 and "env_backup" not in kept
    assert {t: (v["result"], v["code"], v["seconds"]) for t, v in kept["last"].items()} == {
        "backup": ("backed_up", 0, 1.5), "restore": ("restore_failed", 5, 2.0), "backup-env": ("backup_failed", 2, 0.25)}
