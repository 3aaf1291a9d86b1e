"""`health --dry-run` without --fix says plainly that it would write
nothing (#24): a plain health is a read, and its dry run printed the check
alone, as if --dry-run had been ignored. Human output at 80 and 200 columns
against golden files, and --json: `would` empty, with a note saying why."""
import json

import pytest

from tests.conftest import one, run_cli
from tests.test_golden import check
from tests.test_piped_output import trailing


@pytest.fixture
def down(sandbox):
    """A deployed sandbox whose service has died: the case where a plain
    health has the most to say, and --fix would act."""
    assert sandbox.result()[0] == 0
    sandbox.stop()
    return sandbox


def files(box):
    return {p: p.read_bytes() for p in sorted(box.home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("width", (80, 200))
def test_a_plain_health_dry_run_says_it_would_write_nothing(down, width):
    before = files(down)
    r = run_cli("health", "--dry-run", "-i", str(down.inventory), env={"COLUMNS": str(width)})
    assert r.returncode == 2 and r.stderr == "", r.stdout + r.stderr
    assert not trailing(r.stdout)
    said = " ".join(r.stdout.split())
    assert "local: would write nothing: a plain health only reads" in said, r.stdout
    assert "health --fix --dry-run shows what --fix would do" in said, r.stdout
    check("health-dry-run", width, r.stdout)
    assert files(down) == before


def test_a_plain_health_dry_run_json_has_an_empty_would_and_a_note(down):
    r = run_cli("health", "--dry-run", "--json", "-i", str(down.inventory))
    value = one(r.stdout)
    assert r.returncode == 2 and value["would"] == [] and value["dry_run"] is True, r.stdout
    assert value["note"].startswith("would write nothing: a plain health only reads"), value
    # the control: --fix --dry-run has writes to name, and no note
    r = run_cli("health", "--fix", "--dry-run", "--json", "-i", str(down.inventory))
    value = one(r.stdout)
    assert [w["action"] for w in value["would"]] == ["record", "restart", "log"] and "note" not in value, r.stdout
    assert value["dry_run"] is True, r.stdout
    human = run_cli("health", "--fix", "--dry-run", "-i", str(down.inventory), env={"COLUMNS": "80"})
    assert "would restart bot" in human.stdout and "would write nothing" not in human.stdout, human.stdout


def test_a_health_without_dry_run_adds_no_note(down):
    """The note is the dry run's: a real plain health says what it saw."""
    r = run_cli("health", "--json", "-i", str(down.inventory))
    value = one(r.stdout)
    assert "note" not in value and "dry_run" not in value, json.dumps(value)
    human = run_cli("health", "-i", str(down.inventory), env={"COLUMNS": "80"})
    assert "would" not in human.stdout, human.stdout
