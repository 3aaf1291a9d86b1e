"""A run that moved no commit reads as what it was (new-user trial, #24):
`inv history` showed local-update's restart on the deployed commit as
`deployed X→X … <subject>` (a redeploy, by its look) and a backup as
`backup root X→X backed_up`. Such a row says `at X`, the result it had
(`restarted`, `healthy`, `backed_up`) and its own message instead of the
commit's subject, in history's table at 80 and 200 columns and in status'
last-run line; --json keeps the record's fields."""
import pytest

from tests.test_golden import NOW, SHA, WIDTHS, check, frozen, render  # noqa: F401 - frozen: a fixture

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
]


@pytest.mark.parametrize("width", WIDTHS)
def test_a_run_that_moved_no_commit_says_what_it_did(width, frozen, capsys, monkeypatch):  # noqa: F811
    from fabops.tasks.render import history_table

    text = render(capsys, monkeypatch, width, history_table, "find-to-do", RUNS)
    flat = " ".join(text.split())
    assert "3f2a9c1d7e→9b8c7d6e5f" in text and "9b8c7d6e5f→9b8c7d6e5f" not in text, text
    assert flat.count("at 9b8c7d6e5f restarted") == 1 and "at 9b8c7d6e5f healthy" in flat, text
    assert "at 9b8c7d6e5f backed_up" in flat and "restarted bot at 9b8c7d6e5f; healthy again" in flat, text
    assert flat.count("Switch the recorder") == 1, text  # the deploy's subject, not the restart's
    check("history-in-place", width, text)


def test_status_last_run_line_says_the_restart(frozen, capsys, monkeypatch):  # noqa: F811
    from fabops.tasks.render import status_panel

    data = {"services": [{"name": "bot", "active": True, "state": "active", "pid": 42}], "deployed": SHA[1],
            "deployed_at": NOW - 7200, "last_check": NOW - 60, "last_result": "noop", "last_run": RUNS[1]}
    text = render(capsys, monkeypatch, 200, status_panel, "find-to-do", data)
    assert "cron by ec2-user@find-to-do: restarted at 9b8c7d6e5f" in text, text
    data["last_run"] = RUNS[3]
    text = render(capsys, monkeypatch, 200, status_panel, "find-to-do", data)
    assert "backed_up at 9b8c7d6e5f" in text and "->" not in text, text
