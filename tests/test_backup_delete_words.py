"""Trial #24: `backup --dry-run` said `would delete ID: retention: not
among the snapshots keep (daily 7, weekly 4, monthly 6) keeps`, a garbled
sentence: the keep policy is what keeps them."""
from fabops.host.backup import BackupPlan
from fabops.inventory import Keep


def test_a_retention_delete_names_the_keep_policy():
    p = BackupPlan(host="h", run_id="r2", app="/srv/app", snapshot="/b/r2", items=(), exclude=(),
                   keep=Keep(daily=7, weekly=4, monthly=6), existing=(), delete=("r1",), env={})
    (delete,) = [w for w in p.would() if w.action == "delete"]
    assert (delete.target, delete.why) == ("r1", "retention: not among the snapshots the keep policy "
                                                 "(daily 7, weekly 4, monthly 6) keeps, if every item is "
                                                 "copied"), delete
    (delete,) = [w for w in p.would(offsite=True) if w.action == "delete"]
    assert delete.why.endswith("keeps, if every item is copied and the repository has it (a failed off-host "
                               "copy keeps one not yet off the host for the next run)"), delete
