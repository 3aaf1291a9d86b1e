"""#24: monitor's "errors in the last hour" counted only lines with the word
"error", so a crash that never says it (a Python Traceback, Node's
Uncaught, Go's panic:, FATAL, a segfault, systemd's status=1/FAILURE) read
as 0 errors. One rule (logs.ERROR_WORDS, docs/monitor.md) for the count and
for `logs --errors`, run here by a real sh and grep."""
import os
import subprocess

import pytest
import yaml

from fabops import inventory, monitor
from fabops.logs import error_filter
from fabops.probe import split_sections

CRASHES = [
    "Traceback (most recent call last):",
    "Uncaught TypeError: cannot read properties of undefined",
    "Uncaught exception in handler",
    "panic: runtime error: index out of range [3] with length 3",
    "FATAL: the database system is shutting down",
    "Segmentation fault (core dumped)",
    "bot.service: Main process exited, code=exited, status=1/FAILURE",
    "bot.service: Failed with result 'exit-code'.",
    "ValueError: invalid literal for int()",
    "2026-12-06 ERROR something broke",
]
CALM = ["bot ready on port 3013", "served 200 in 12 ms", "Started bot.service.", "status=0/SUCCESS"]


def test_logs_errors_keeps_every_crash_line_and_no_calm_one():
    text = "".join(line + "\n" for line in CRASHES + CALM)
    r = subprocess.run(["sh", "-c", "cat" + error_filter("journal", follow=False)], input=text,
                       capture_output=True, text=True)
    assert r.stdout.splitlines() == CRASHES, r.stdout


@pytest.mark.parametrize("line", CRASHES)
def test_monitor_counts_a_crash_line_as_an_error(tmp_path, line):
    host = inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "home": str(tmp_path / "home"), "app": {"path": str(tmp_path), "remote": "o"},
        "services": [{"name": "bot", "manager": "process", "command": "true"}]}}}), "t.yml").hosts["h"]
    log = host.paths.service_log("bot")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as fh:
        fh.write("".join(calm + "\n" for calm in CALM) + line + "\n")
    # the log files' errors are counted by the monitor script's one python3 (host/monitorfacts.errors)
    facts = monitor._facts_part(host)
    out = subprocess.run(["sh", "-c", str(facts)], capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    # one count per service log; the update log's is a section of its own (errors_update), summed by monitor.parse
    assert split_sections(out)["errors"].split() == ["1"], out
