"""`logs --errors --source update` (issue #24): the update log's line of a
run that failed or was rolled back need not say "error" (`ROLLED_BACK
a -> b ...: bot crashed`), and an error filter that drops it hides the
very runs a person looks for."""
import subprocess

from fabops.host.record import FAILURES, RESULT_CODES
from fabops.logs import error_filter
from tests.conftest import run_cli


def grep(source: str, text: str) -> str:
    r = subprocess.run(["sh", "-c", "cat" + error_filter(source, follow=False)], input=text,
                       capture_output=True, text=True)
    return r.stdout


def line(result: str) -> str:
    # the update log's line as host/record.py (Recorder.record) writes it
    return f"2026-12-06T10:00:00+0000 [cron cron@h] {result.upper()} 1111 -> 2222 in 1.0s: something\n"


def test_every_failure_word_the_update_log_writes_is_an_error():
    written = [r for r in RESULT_CODES if not r.startswith("would_") and r != "noop"]  # record() skips these
    kept = grep("update", "".join(line(r) for r in written) + "npm ERR! network error\nall fine\n")
    assert kept == "".join(line(r) for r in written if r in FAILURES) + "npm ERR! network error\n"
    assert {"aborted", "rolled_back", "broken"} <= set(FAILURES)
    # the journal has no status words: the words of one app's log are not ours to give meaning
    assert grep("journal", line("rolled_back") + "an Error\n") == "an Error\n"


def test_errors_shows_a_rolled_back_run(sandbox):
    sandbox.result()  # v1 deployed
    sandbox.origin.crash("2")
    code, res = sandbox.result()
    assert (code, res["result"]) == (2, "rolled_back"), res
    r = run_cli("logs", "-i", str(sandbox.inventory), "--source", "update", "--errors", "-n", "20")
    assert r.returncode == 0, r.stderr
    shown = [x for x in r.stdout.splitlines() if " ROLLED_BACK " in x]
    assert len(shown) == 1 and "v2 crashes on boot" in shown[0], r.stdout
    assert " DEPLOYED " not in r.stdout  # v1's good run is no error


def test_a_failed_backup_or_restore_line_is_an_error():
    """Every run the history records has its update-log line (host/record.log_line),
    a failed backup's and restore's too; `--errors` keeps those, not the good ones."""
    lines = [line(r) for r in ("backup_failed", "restore_failed", "backed_up", "restored")]
    assert grep("update", "".join(lines)) == "".join(lines[:2])
    # env-set's (#29): a failed gate whose previous .env is back, a run an error stopped; not a change
    lines = [line(r) for r in ("reverted", "failed", "changed")]
    assert grep("update", "".join(lines)) == "".join(lines[:2])


def test_a_failed_health_check_line_is_an_error():
    """#24's trial: `logs --source health --errors` showed none of the
    health log's `FAILED:` lines (a stopped service need not say "error").
    The lines as host/health._line writes them; an OK or WARNING one is no
    error, nor another source's line that says `FAILED:` elsewhere."""
    from fabops import errors
    from fabops.host.health import HealthReport, _line
    from fabops.inventory import loads

    host = loads("hosts:\n  h1: {app: {path: /srv/app}}\n", "x.yml").hosts["h1"]
    said = [_line(host, HealthReport("h1", code, "down", message=f"bot is {word}")) + "\n"
            for code, word in ((errors.FAILED, "stopped"), (errors.OK, "ok"), (errors.WARNING, "recovered"))]
    assert grep("health", "".join(said)) == said[0], said
    assert grep("journal", said[0]) == ""  # an app's words are not health's
