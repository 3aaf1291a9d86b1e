"""#24's leftover: `status` still listed every remembered bad target, one
origin had long moved past too (a commit a failed gate marked bad, then
origin's branch went on to a newer one: cron never targets it again, so
listing it as a current bad target misled), while monitor's panel left it
out (tests/test_monitor_bad_behind.py). status now reads the same
`behind` section and shows the same `bad_ahead`; `--json` keeps `bad`
(all of state.json's) and adds `bad_ahead` (docs/json.md)."""
import json
import subprocess

import jsonschema
import pytest

from fabops import remote
from fabops.fanout import HostResult
from fabops.tasks._base import envelope
from tests.conftest import json_schema
from tests.test_golden import NOW, SHA, WIDTHS, check, frozen, render  # noqa: F401 (frozen: the panel's clock)
from tests.test_monitor_bad_behind import bad_targets_host


@pytest.mark.parametrize("shell", ["sh", "dash"])
def test_status_reads_which_bad_targets_origin_moved_past(tmp_path, shell):
    host, (past, good, head, side) = bad_targets_host(tmp_path, shell)
    bad = (past, head, side)
    home = tmp_path / "home"
    run = lambda: subprocess.run([shell, "-c", str(remote.status_cmd(host))], capture_output=True,  # noqa: E731
                                 text=True, stdin=subprocess.DEVNULL, timeout=60).stdout
    data = remote.parse_status(run(), host)
    assert data["bad"] == sorted(bad) and data["bad_ahead"] == sorted([head, side]), data
    assert data["deployed"] == good and data["origin"] == head and data["head"] == good, data
    doc = envelope([HostResult("h", value=data, code=remote.status_code(data))])
    jsonschema.validate(json.loads(json.dumps(doc)), json_schema())
    # no bad target, and no state at all: nothing to read, nothing shown
    (home / "state.json").write_text(json.dumps({"deployed": good, "bad": {}}, indent=2))
    assert remote.parse_status(run(), host)["bad_ahead"] == []
    (home / "state.json").unlink()
    data = remote.parse_status(run(), host)
    assert data["deployed"] is None and data["bad"] == [] and data["bad_ahead"] == [], data


@pytest.mark.parametrize("width", WIDTHS)
def test_status_shows_only_the_bad_targets_still_ahead(width, frozen, capsys, monkeypatch):  # noqa: F811
    """One bad target behind the checkout (origin moved past it) and one
    still ahead: the panel lists the second only, as monitor's does; a
    status that could not read which are behind (an older host's output)
    lists all, as before."""
    from fabops.tasks.render import status_panel

    data = {"services": [{"name": "bot", "active": True, "state": "active", "pid": 4242, "uptime": 3600.0}],
            "deployed": SHA[1], "deployed_at": NOW - 7200, "head": SHA[1], "last_check": NOW - 120,
            "last_result": "noop", "bad": sorted([SHA[0], SHA[2]]), "bad_ahead": [SHA[2]], "origin": SHA[1],
            "last_run": {"ts": NOW - 120, "trigger": "cron", "actor": "deploy@host", "result": "noop",
                         "from": SHA[1], "to": SHA[1]}}
    text = render(capsys, monkeypatch, width, status_panel, "sandbox", data)
    assert f"remembered bad targets: {SHA[2][:10]}" in text and SHA[0][:10] not in text, text
    unread = render(capsys, monkeypatch, width, status_panel, "sandbox", dict(data, bad_ahead=None))
    assert SHA[0][:10] in unread and SHA[2][:10] in unread, unread
    none_ahead = render(capsys, monkeypatch, width, status_panel, "sandbox", dict(data, bad_ahead=[]))
    assert "remembered bad targets" not in none_ahead, none_ahead
    check("status-bad-behind", width, text)
