"""Backups, unit tier (issue #26): the retention policy as a table of dates
-> kept, the `backup:` schema with hostile values, the manifest a run
writes and the listing that reads it back."""
import datetime
import textwrap

import pytest

from fabops import inventory
from fabops.errors import ConfigError
from fabops.host.backup import Snapshot, excluded, kept, to_delete
from fabops.inventory import Keep

pytestmark = pytest.mark.unit


def d(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M")


# (snapshot times, keep (daily, weekly, monthly), the times kept)
RETENTION = [
    # two a day: daily keeps the newest of each of the last 2 days, and the newest is always kept
    (["2026-12-01 01:00", "2026-12-01 13:00", "2026-12-02 01:00", "2026-12-02 13:00", "2026-12-03 01:00"],
     (2, 0, 0), ["2026-12-02 13:00", "2026-12-03 01:00"]),
    # nothing asked: only the newest
    (["2026-12-01 01:00", "2026-12-02 01:00"], (0, 0, 0), ["2026-12-02 01:00"]),
    # weekly: the newest of each ISO week (Mon 2026-11-30 starts week 49); 2 weeks
    (["2026-11-22 03:00", "2026-11-27 03:00", "2026-11-29 03:00", "2026-11-30 03:00", "2026-12-04 03:00"],
     (0, 2, 0), ["2026-11-29 03:00", "2026-12-04 03:00"]),
    # monthly: the newest of each month, 3 months; daily 1 adds nothing new
    (["2026-09-10 00:00", "2026-09-30 00:00", "2026-10-15 00:00", "2026-11-01 00:00", "2026-11-20 00:00",
      "2026-12-01 00:00"],
     (1, 0, 3), ["2026-10-15 00:00", "2026-11-20 00:00", "2026-12-01 00:00"]),
    # a year boundary: ISO week 53 of 2026 spans into January 2027
    (["2026-12-28 00:00", "2027-01-02 00:00", "2027-01-04 00:00"], (0, 2, 0), ["2027-01-02 00:00", "2027-01-04 00:00"]),
    # the union of the three: 7/4/6 over a daily November keeps the last 7 days, and the Sundays
    # ending the 3 ISO weeks before Monday the 30th's (4 weeks), whose newest is the month's too
    ([f"2026-11-{n:02d} 02:00" for n in range(1, 31)], (7, 4, 6),
     [f"2026-11-{n:02d} 02:00" for n in range(24, 31)] + ["2026-11-22 02:00", "2026-11-15 02:00"]),
    # more counted than there are snapshots: everything is kept
    (["2026-12-01 00:00", "2026-12-02 00:00"], (7, 4, 6), ["2026-12-01 00:00", "2026-12-02 00:00"]),
    ([], (7, 4, 6), []),
]


@pytest.mark.parametrize("times, keep, want", RETENTION)
def test_retention_keeps_what_the_policy_says(times, keep, want):
    assert kept([d(t) for t in times], Keep(*keep)) == {d(t) for t in want}


def _snap(run_id, when, ok=True):
    return Snapshot(run_id, "/x/" + run_id, d(when).timestamp(), d(when).timestamp() + 1, ok, 10, 3, 0 if ok else 1)


def test_to_delete_spares_what_is_kept_and_drops_failed_runs_once_superseded():
    snaps = [_snap("a", "2026-12-01 02:00"), _snap("b", "2026-12-02 02:00"), _snap("c", "2026-12-03 01:00", ok=False),
             _snap("d", "2026-12-03 02:00")]
    # keep one day: b goes, a goes; c failed and d (ok) is newer: superseded
    assert to_delete(snaps, Keep(1, 0, 0)) == ["a", "b", "c"]
    # a new run (the plan's view) counts as the newest: d is then not its day's newest
    new = d("2026-12-03 03:00").timestamp()
    assert to_delete(snaps, Keep(1, 0, 0), new=new) == ["a", "b", "c", "d"]
    # a failed run newer than every ok one is kept: it is the latest evidence of what happened
    assert "e" not in to_delete(snaps + [_snap("e", "2026-12-04 02:00", ok=False)], Keep(7, 0, 0))


@pytest.mark.parametrize("name, patterns, out", [
    ("srv/app/data/x.log", ("*.log",), True),
    ("srv/app/data/cache", ("cache",), True),
    ("srv/app/data/cache/a/b", ("cache/*",), True),
    ("srv/app/data/cached.txt", ("cache",), False),
    ("srv/app/data/a.txt", ("*.log", "cache"), False),
])
def test_excludes_match_a_name_or_a_trailing_part_of_the_path(name, patterns, out):
    assert excluded(name, patterns) is out


def load(backup: str, connection: str = "ssh"):
    text = textwrap.dedent("""\
        hosts:
          h:
            connection: {connection}
            app: {{path: /srv/app}}
            backup:
        """).format(connection=connection) + textwrap.indent(textwrap.dedent(backup), "      ")
    return inventory.loads(text, "x.yml").hosts["h"]


def test_defaults_and_a_full_section():
    host = inventory.loads("hosts:\n  h: {app: {path: /srv/app}}\n", "x.yml").hosts["h"]
    b = host.backup
    assert (b.files, b.sqlite, b.dump, b.schedule, b.repository) == ((), (), (), "@daily", None)
    assert (b.keep.daily, b.keep.weekly, b.keep.monthly) == (7, 4, 6)
    host = load("""\
        files: [uploads, /etc/app, ~/notes]
        exclude: ["*.tmp"]
        sqlite: [data/app.db]
        dump: [{name: pg, command: "pg_dump app"}]
        schedule: "30 3 * * *"
        keep: {daily: 3}
        repository: {url: "sftp:backup@10.0.0.9:/srv/restic", password_file: ~/.restic-password}
        """)
    b = host.backup
    assert b.files == ("uploads", "/etc/app", "~/notes") and b.dump[0].name == "pg"
    assert (b.keep.daily, b.keep.weekly) == (3, 4) and b.repository.password_file == "~/.restic-password"
    # host.yml carries it to the host unchanged
    again = inventory.from_data({"hosts": {"h": host.to_dict()}}).hosts["h"]
    assert again.backup == b
    assert load("schedule: off\n").backup.schedule is None


def test_defaults_merge_key_by_key_and_lists_replace():
    text = textwrap.dedent("""\
        defaults:
          backup: {keep: {daily: 2}, files: [a], sqlite: [x.db]}
        hosts:
          h:
            app: {path: /srv/app}
            backup: {keep: {monthly: 1}, files: [b]}
        """)
    b = inventory.loads(text, "x.yml").hosts["h"].backup
    assert (b.keep.daily, b.keep.weekly, b.keep.monthly) == (2, 4, 1) and b.files == ("b",) and b.sqlite == ("x.db",)


@pytest.mark.parametrize("backup, key, words", [
    ('files: ["$(touch /tmp/x)"]\n', "backup.files[0]", "may hold letters"),
    ("files: [../etc]\n", "backup.files[0]", ".."),
    ("sqlite: [-db]\n", "backup.sqlite[0]", "must not start with '-'"),
    ('exclude: ["-x"]\n', "backup.exclude[0]", "leading '-'"),
    ('exclude: [""]\n', "backup.exclude[0]", "not empty"),
    ('dump: [{name: "../x", command: "true"}]\n', "backup.dump[0].name", "names the item's file"),
    ('dump: [{name: "a b", command: "true"}]\n', "backup.dump[0].name", "names the item's file"),
    ('dump: [{name: "a", command: "true"}, {name: "a", command: "false"}]\n', "backup.dump[1].name", "duplicate dump"),
    ("dump: [{name: a}]\n", "backup.dump[0].command", "is required"),
    ("keep: {daily: -1}\n", "backup.keep.daily", "out of range"),
    ("keep: {hourly: 3}\n", "backup.keep.hourly", "unknown key"),
    ('schedule: "* * *"\n', "backup.schedule", "needs 5 fields"),
    ('repository: {url: "x;rm -rf /", password_file: /etc/pw}\n', "backup.repository.url", "refused"),
    ('repository: {url: "-o x", password_file: /etc/pw}\n', "backup.repository.url", "must not start"),
    ("repository: {url: /srv/restic}\n", "backup.repository.password_file", "is required"),
    ("repository: {url: /srv/restic, password_file: pw}\n", "backup.repository.password_file", "must be absolute"),
])
def test_hostile_values_are_refused_naming_the_key(backup, key, words):
    with pytest.raises(ConfigError) as info:
        load(backup)
    problems = dict(info.value.problems) if getattr(info.value, "problems", None) else {info.value.key: info.value.problem}
    assert f"hosts.h.{key}" in problems, problems
    assert words in problems[f"hosts.h.{key}"], problems
