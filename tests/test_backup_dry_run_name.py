"""#24: `backup --dry-run` named a snapshot by an id of its own
(`would write …/backups/20261206T230950-123456`) that the real run, which
makes its id when it starts, never used. The dry run names it by the id's
form; the real run's name has that form, in the same directory: both made
by host/backup.plan (paths.backup_snapshot)."""
import posixpath
import re

from fabops.host.backup import DRY_RUN_ID, plan, result, run
from tests.test_backup_unit import local


def test_the_dry_runs_snapshot_name_is_the_form_the_real_run_fills_in(tmp_path):
    host, paths = local(tmp_path, {})
    planned = result("plan", host, paths)
    (write,) = [w for w in planned["would"] if w["action"] == "write"]
    assert write["target"] == planned["snapshot"] == posixpath.join(paths.backups, "YYYYMMDDTHHMMSS-xxxxxx")
    assert planned["run_id"] == DRY_RUN_ID
    done = run(plan(host, paths), paths)  # the real run's name: its own id, made as it starts
    assert posixpath.dirname(done["snapshot"]) == posixpath.dirname(write["target"])
    form = DRY_RUN_ID.replace("YYYYMMDD", r"\d{8}").replace("HHMMSS", r"\d{6}").replace("xxxxxx", "[0-9a-f]{6}")
    assert re.fullmatch(form, done["run_id"]) and posixpath.basename(done["snapshot"]) == done["run_id"], done
