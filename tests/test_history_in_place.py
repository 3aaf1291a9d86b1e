"""A run that moved no commit reads as what it was (new-user trial, #24):
`inv history` showed local-update's restart on the deployed commit as
`deployed X→X … <subject>` (a redeploy, by its look) and a backup as
`backup root X→X backed_up`. Such a row says `at X` and its own message
instead of the commit's subject, in history's table at 80 and 200 columns
and in status' last-run line; --json keeps the record's fields.

The result is the record's own word (#24, a later trial): local-update's
deploy that finished a run whose watch a restart had ended (its `from` is
the checkout, already on the commit) read `healthy` beside `deployed` in
--json, the update log and the run's own output. Such a deploy's message,
`X -> X`, gives way to the commit's subject. One exception, the same in
history, status and the update log (host/record.shown_result, #24's
review): a person's `restart`'s or `health --fix`'s record keeps
`deployed` for the verdict rules, but reads `healthy` (it shipped nothing;
its message says what it did)."""
import pytest

from tests.test_golden import NOW, SHA, WIDTHS, check, frozen, render  # noqa: F401 - frozen: a fixture
from tests.test_watch_lock import cron_run  # noqa: F401 - a fixture

RUNS = [
    {"ts": NOW - 7200, "trigger": "deploy", "actor": "alice@laptop", "from": SHA[0], "to": SHA[1],
     "result": "deployed", "duration": 12.4, "subject": "Switch the recorder", "author": "Alice",
     "message": "deployed"},
    {"ts": NOW - 3600, "trigger": "cron", "actor": "ec2-user@find-to-do", "from": SHA[1], "to": SHA[1],
     "result": "deployed", "duration": 3.2, "subject": "Switch the recorder", "author": "Alice",
     "message": "restarted bot at 9b8c7d6e5f; healthy again"},
    {"ts": NOW - 1800, "trigger": "health", "actor": "bob@laptop", "from": SHA[1], "to": SHA[1],
     "result": "deployed", "duration": 0.8, "message": "every service healthy at 9b8c7d6e5f again"},
    {"ts": NOW - 600, "trigger": "backup", "actor": "root@find-to-do", "from": SHA[1], "to": SHA[1],
     "result": "backed_up", "duration": 1.5,
     "message": "snapshot 20261129T133640-4f2e1a: 5 items ok, on this host only"},
    # a deploy in its watch, ended by a person's restart; local-update finishes it
    {"ts": NOW - 500, "trigger": "cron", "actor": "cron@find-to-do", "from": SHA[1], "to": SHA[2],
     "result": "superseded", "duration": 4.1, "subject": "Record the meeting's end", "author": "Bob",
     "message": "watch ended by restart by bob@laptop 1 s in: 0a1b2c3d4e was not promoted (the rollback target "
                "stays 9b8c7d6e5f); the next run finishes this one"},
    {"ts": NOW - 300, "trigger": "manual", "actor": "root@find-to-do", "from": SHA[2], "to": SHA[2],
     "result": "deployed", "duration": 2.5, "subject": "Record the meeting's end", "author": "Bob",
     "message": "0a1b2c3d4e -> 0a1b2c3d4e"},
]


@pytest.mark.parametrize("width", WIDTHS)
def test_a_run_that_moved_no_commit_says_what_it_did(width, frozen, capsys, monkeypatch):  # noqa: F811
    from fabops.tasks.render import history_table

    text = render(capsys, monkeypatch, width, history_table, "find-to-do", RUNS)
    flat = " ".join(text.split())
    assert "3f2a9c1d7e→9b8c7d6e5f" in text and "9b8c7d6e5f→9b8c7d6e5f" not in text, text
    # each row's result is its record's (`deployed`), but a health --fix's,
    # which reads as the update log's line says it: `healthy`, not a deploy
    assert flat.count("at 9b8c7d6e5f deployed") == 1 and "restarted " not in flat.replace("restarted bot", ""), text
    assert "health bob at 9b8c7d6e5f healthy" in flat, text
    assert "healthy " not in flat.replace("healthy again", "").replace("healthy at", "").replace(
        "9b8c7d6e5f healthy", ""), text
    assert "at 9b8c7d6e5f backed_up" in flat and "restarted bot at 9b8c7d6e5f; healthy again" in flat, text
    assert flat.count("Switch the recorder") == 1, text  # the deploy's subject, not the restart's
    # the deploy that finished the superseded run: its result and subject, once; no `X -> X`
    assert "at 0a1b2c3d4e deployed" in flat and "0a1b2c3d4e -> 0a1b2c3d4e" not in flat, text
    assert flat.count("Record the meeting's end (Bob)") == 1, text  # the superseded row keeps its reason
    check("history-in-place", width, text)


def test_status_last_run_line_says_the_restart(frozen, capsys, monkeypatch):  # noqa: F811
    from fabops.tasks.render import status_panel

    data = {"services": [{"name": "bot", "active": True, "state": "active", "pid": 42}], "deployed": SHA[1],
            "deployed_at": NOW - 7200, "last_check": NOW - 60, "last_result": "noop", "last_run": RUNS[1]}
    text = render(capsys, monkeypatch, 200, status_panel, "find-to-do", data)
    assert "cron by ec2-user@find-to-do: deployed at 9b8c7d6e5f" in text, text
    data["last_run"] = RUNS[3]
    text = render(capsys, monkeypatch, 200, status_panel, "find-to-do", data)
    assert "backed_up at 9b8c7d6e5f" in text and "->" not in text, text
    data["last_run"] = RUNS[5]
    text = render(capsys, monkeypatch, 200, status_panel, "find-to-do", data)
    assert "manual by root@find-to-do: deployed at 0a1b2c3d4e" in text and "healthy" not in text, text
    # a person's restart or health --fix: what it did, its message (host/record.shown_result)
    data["last_run"] = dict(RUNS[2], trigger="restart")
    text = render(capsys, monkeypatch, 200, status_panel, "find-to-do", data)
    assert "restart by bob@laptop: every service healthy at 9b8c7d6e5f again" in text and "deployed at" not in text


def test_the_run_that_finishes_a_watch_a_restart_ended_reads_as_its_record(sandbox, cron_run):  # noqa: F811
    """The trial's path on a sandbox host: cron's deploy of v2 in its watch,
    a person's restart ends the watch (cron's record: superseded; the
    restart records nothing: remote.restart_records), and local-update
    finishes the deploy: one `deployed` record, from the checkout (v2) to
    v2. history and status said `healthy at v2` beside it."""
    import json

    from tests.conftest import run_cli
    from tests.test_watch_lock import long_watch

    sandbox.result()
    long_watch(sandbox, "120s")
    v2 = sandbox.origin.good("2")
    cron = cron_run()
    cron.wait_for_watch()
    assert run_cli("restart", "-i", str(sandbox.inventory), "--actor", "bob@laptop").returncode == 0
    assert cron.result()[1]["result"] == "superseded"
    long_watch(sandbox, "1s")
    assert run_cli("local-update", "-i", str(sandbox.inventory)).returncode == 1  # it warns what it finished
    last = sandbox.history()[-1]
    assert (last["result"], last["from"], last["to"]) == ("deployed", v2, v2), last
    shown = run_cli("history", "-i", str(sandbox.inventory), "--json")
    assert json.loads(shown.stdout)["hosts"]["local"][-1]["result"] == "deployed", shown.stdout
    flat = " ".join(run_cli("history", "-i", str(sandbox.inventory)).stdout.split())
    assert f"at {v2[:10]} deployed" in flat and "healthy" not in flat and f"{v2[:10]} -> " not in flat, flat
    status = " ".join(run_cli("status", "-i", str(sandbox.inventory)).stdout.split())
    assert f": deployed at {v2[:10]}" in status, status


def test_a_deploy_that_found_its_target_checked_out_says_already_at(frozen, capsys, monkeypatch):  # noqa: F811
    """Its message since #24's trial (host/pipeline._promote): `already at
    X, now deployed (was W)`, not `X -> X`; history's row still shows the
    commit's subject, once, as any deploy's."""
    from fabops.tasks.render import history_table

    runs = RUNS[:-1] + [dict(RUNS[-1], message="already at 0a1b2c3d4e, now deployed (was 9b8c7d6e5f)")]
    flat = " ".join(render(capsys, monkeypatch, 200, history_table, "find-to-do", runs).split())
    assert "at 0a1b2c3d4e deployed" in flat and flat.count("Record the meeting's end (Bob)") == 1, flat
    assert "already at" not in flat, flat
