"""`backup.repository_keep` (issue #26, docs/backups.md "Retention"): the
repository's own keep, so it may keep more than the host's disk can. Its
settings (over keep's, never fewer), the policy over the repository's
snapshots, and a run whose restic forget applies it while the host's
retention applies keep."""
import pytest

from fabops.errors import ConfigError
from fabops.host import backup, restic
from fabops.host.restic import Remote, run_started
from fabops.inventory import Keep
from tests.test_backup_unit import repo_host

pytestmark = pytest.mark.unit

# one snapshot a day, 2026-12-01 to 2026-12-05, 03:00 local time
DAYS = [f"202612{d:02d}T030000-{d:06d}" for d in range(1, 6)]


def test_it_is_its_counts_over_keeps_and_absent_it_is_keep(tmp_path):
    host, _ = repo_host(tmp_path, keep={"daily": 2, "weekly": 1, "monthly": 0}, repository_keep={"monthly": 24})
    assert host.backup.repository_keep == Keep(2, 1, 24) and host.backup.offsite_keep == Keep(2, 1, 24)
    host, _ = repo_host(tmp_path, keep={"daily": 2, "weekly": 1, "monthly": 0})
    assert host.backup.repository_keep is None and host.backup.offsite_keep == Keep(2, 1, 0)


@pytest.mark.parametrize("value, words", [
    ({"daily": 1}, "1 is fewer than keep.daily (7): the repository keeps at least what the host keeps"),
    ({"monthly": -1}, ""),
    ({"yearly": 3}, "unknown key; allowed: daily, weekly, monthly"),
    ("daily", ""),
])
def test_a_repository_keep_below_keep_or_malformed_is_refused_naming_the_key(tmp_path, value, words):
    with pytest.raises(ConfigError) as info:
        repo_host(tmp_path, repository_keep=value)
    problems = dict(info.value.problems) if getattr(info.value, "problems", None) else {info.value.key: info.value.problem}
    (key,) = [k for k in problems if "repository_keep" in k]
    assert words in problems[key], problems


def test_the_repository_keeps_more_days_than_the_host():
    remote = [Remote(r, run_started(r), True, r[-6:]) for r in DAYS]
    assert backup.to_delete(remote, Keep(1, 0, 0)) == DAYS[:4]  # the host's rule: the newest day
    assert backup.to_delete(remote, Keep(3, 0, 0)) == DAYS[:2]  # the repository's: the newest 3 days


def test_a_run_forgets_by_repository_keep_and_deletes_locally_by_keep(tmp_path, monkeypatch):
    host, paths = repo_host(tmp_path, keep={"daily": 0, "weekly": 0, "monthly": 0},
                            repository_keep={"daily": 3})
    snaps = [{"id": r[-6:], "tags": [f"run={r}", "ok=yes"]} for r in DAYS]
    forgot = []

    def upload(repo, name, snap):
        snaps.append({"id": snap.run_id[-6:], "tags": [f"run={snap.run_id}", "ok=yes", f"started={snap.started}"]})
        return snap.run_id[-6:]

    def call(repo, *args, **kw):
        if args[:2] == ("forget", "--prune"):
            forgot.extend(args[2:])
            snaps[:] = [s for s in snaps if s["id"] not in args[2:]]
        return ""

    monkeypatch.setattr(restic, "ready", lambda repo: None)
    monkeypatch.setattr(restic, "remote_runs", lambda repo, name: list(snaps))
    monkeypatch.setattr(restic, "call", call)
    monkeypatch.setattr(restic, "upload", upload)
    monkeypatch.setattr(backup, "notify_once", lambda host, paths, done: [])
    first = backup.locked_run(host, paths)
    second = backup.locked_run(host, paths)
    # the host keeps only its newest; the repository its newest 3 days: today's (the newest run), 12-05 and 12-04
    assert second["deleted"] == [first["run_id"]] and [s.run_id for s in backup.snapshots(paths)] == [second["run_id"]]
    assert sorted(second["offsite"]["forgotten"]) == [first["run_id"]]
    assert sorted(set(forgot)) == sorted(r[-6:] for r in DAYS[:3]) + [first["run_id"][-6:]]


def test_the_dry_run_names_the_rule_it_forgets_by(tmp_path):
    host, _ = repo_host(tmp_path, repository_keep={"monthly": 24})
    (forget,) = [w for w in backup.offsite_would(host) if w.action == "forget"]
    assert "of those backup.repository_keep does not keep (daily 7, weekly 4, monthly 24;" in forget.why
    host, _ = repo_host(tmp_path)
    (forget,) = [w for w in backup.offsite_would(host) if w.action == "forget"]
    assert "of those retention's rule does not keep (daily 7, weekly 4, monthly 6;" in forget.why
