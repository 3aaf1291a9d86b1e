"""#24's fresh-clone trial (`inv demo --keep`, then every task against
`-H local` at 80 columns): its smaller findings, each with its test."""
import json

import pytest

from fabops.tasks.observe import _errors_where
from tests import test_golden as golden
from tests.conftest import ROOT, run_cli
from tests.test_golden import WIDTHS, check, render

frozen = golden.frozen  # the golden tests' fixture: UTC, and time stands still


def test_the_errors_hint_names_the_host_and_inventory_in_one_clause():
    """monitor's errors hint lacked `-H HOST` and `-i FILE`, unlike every
    other hint, and stacked two brackets: `(inv logs …) (+1 death …)`."""
    facts = {"errors_last_hour": 2, "errors_last_hour_update": 1, "services": [{"name": "bot"}],
             "unlogged_deaths": [{"service": "bot", "pid": 7}]}
    said = _errors_where(facts, "local", "/tmp/x/.fabops-demo/hosts.yml")
    assert said == ("1 in the service log, 1 in the update log, +1 death not logged yet; `fabops logs -i "
                    "/tmp/x/.fabops-demo/hosts.yml -H local --source update --errors` shows the update log's"), said
    assert _errors_where({**facts, "errors_last_hour_update": 0}, "local") == "2 (+1 death not logged yet)"
    assert _errors_where({"errors_last_hour": None}, "local") == "not available"


@pytest.mark.parametrize("width", WIDTHS)
def test_status_of_a_host_no_run_has_touched_says_so(width, frozen, capsys, monkeypatch):
    """status printed `deployed - (-)` and `last check -: -` where monitor
    says `deploy state: not available yet (no fabops run on this host)`."""
    from fabops.tasks.render import status_panel

    data = {"services": [{"name": "bot", "active": False, "state": "inactive", "pid": None}], "has_state": False,
            "deployed": None, "deployed_at": None, "last_check": None, "last_result": None, "bad": []}
    text = render(capsys, monkeypatch, width, status_panel, "local", data)
    assert "deploy state: not available yet (no fabops run on this host)" in text, text
    assert "deployed -" not in text and "last check" not in text, text
    check("status-no-state", width, text)


def test_status_json_says_the_host_has_no_state(sandbox):
    r = run_cli("status", "-i", str(sandbox.inventory), "-H", "local", "--json")  # run_cli checks the schema
    assert json.loads(r.stdout)["hosts"]["local"]["has_state"] is False, r.stdout
    sandbox.result()
    r = run_cli("status", "-i", str(sandbox.inventory), "-H", "local", "--json")
    assert json.loads(r.stdout)["hosts"]["local"]["has_state"] is True, r.stdout
    r = run_cli("status", "-i", str(sandbox.inventory), "-H", "local", env={"COLUMNS": "80"})
    assert "deployed " in r.stdout and "not available yet" not in r.stdout, r.stdout


def test_a_multi_host_json_keeps_the_selection_order(tmp_path):
    """`status -H local,find-to-do --json` gave its hosts alphabetically
    (print_json's sort_keys); docs/json.md says selection order. Two hosts
    selected in reverse alphabetical order, through the real console
    script (`hosts`: no connection), and every other object still sorted."""
    from fabops.host.report import keys_sorted

    r = run_cli("hosts", "-i", "tests/fixtures/golden/hosts-local.yml", "--show", "web1,local", "--json")
    assert r.returncode == 0, r.stderr
    assert list(json.loads(r.stdout)["hosts"]) == ["web1", "local"], r.stdout
    assert json.dumps(keys_sorted({"b": 1, "hosts": {"z": {"y": 1, "x": 2}, "a": 3}, "a": [{"d": 1, "c": 2}]})) == (
        '{"a": [{"c": 2, "d": 1}], "b": 1, "hosts": {"z": {"x": 2, "y": 1}, "a": 3}}')


def test_a_failed_task_says_which_later_tasks_did_not_run(sandbox):
    """`fabops -H local health history -n 1`: health failed (exit 2) and
    history never ran, without a word (`ping history` ran both). Invoke
    stops at the first failing task; fabops says so in one line
    (docs/errors.md, "Several tasks on one command line")."""
    inv = str(sandbox.inventory)
    r = run_cli("-H", "local", "health", "-i", inv, "history", "-i", inv, "-n", "1")  # nothing deployed: bot is down
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.splitlines()[-1] == "fabops: history not run: health exited 2, and a failed task stops the " \
        "ones after it", r.stderr
    r = run_cli("-H", "local", "ping", "-i", inv, "history", "-i", inv, "-n", "1")
    assert r.returncode == 0 and "not run" not in r.stderr, r.stdout + r.stderr


def test_a_deploy_says_the_known_bad_warning_once(capsys):
    """`deploy` printed the known-bad warning at its start (the planner's
    log line) and again under its result: once is enough."""
    from fabops.tasks.deploy import _Printer

    bad = "0a1b2c3d4e failed its gate before (bot died after starting)"
    on_event = _Printer(len("local"))("local")
    on_event({"kind": "log", "message": bad})
    on_event({"kind": "result", "result": "deployed", "exit_code": 0, "message": "deployed", "warnings": [bad, "other"]})
    out = capsys.readouterr().out
    assert out.count("failed its gate before") == 1 and "warning: other" in out, out


def test_debug_shows_a_scripts_first_line_that_says_something():
    """`fabops --debug health -H local` showed `local:  … (+13 lines)`: the
    script began with a blank line."""
    import logging

    from fabops.tasks._base import _ShownCommand

    record = logging.LogRecord("fabops.commands", logging.DEBUG, "", 0, "%s", ("local", "\n  cd /app\nls\n", 0, 0.1),
                               None)
    assert _ShownCommand().format(record) == "fabops: debug: local: cd /app … (+3 lines) (exit 0, 0.10 s)"


def test_the_demos_headings_name_the_inventory_that_works():
    """The demo's step headings said `(inv deploy -H local)` when it had
    moved to another port and its own inventory, where the closing lines
    rightly said `-i …/.fabops-demo/hosts.yml`."""
    from fabops.demo import _Demo
    from fabops.shell import program

    demo = _Demo.__new__(_Demo)  # its headings' words only: no sandbox is built
    demo.flag = "/tmp/x y/.fabops-demo/hosts.yml"
    assert demo.command("deploy") == f"{program()} deploy -i '/tmp/x y/.fabops-demo/hosts.yml' -H local"
    demo.flag = None
    assert demo.command("monitor") == f"{program()} monitor -H local"


def test_setup_check_exits_1_for_a_warning_not_for_changes():
    """`setup --check` exited 1 with `1 ok, 9 would change, 1 warning`, and
    docs/setup.md did not say why: a warning item is exit 1, a plan with
    changes is no failure (the code is right; the doc now says it)."""
    from fabops.setup import ItemResult, SetupReport

    plan = SetupReport("local", [ItemResult("env.sh", "ok"), ItemResult("crontab", "would change")], check=True)
    assert plan.exit_code == 0
    plan.items.append(ItemResult("broad sudo", "warning"))
    assert plan.exit_code == 1
    doc = (ROOT / "docs" / "setup.md").read_text()
    assert "`setup` and `--check` exit alike" in doc and "1 when an item is a `WARNING`" in " ".join(doc.split())
