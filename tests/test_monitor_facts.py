"""The monitor's one python3 (host/monitorfacts.py) prints the sections the
shell's programs printed before it (docs/benchmarks.md, "The monitor's host
script: one python3"), and the script starts no program for a file it can
read. The shell's reads stay as a host without python3's: both run here on
one real home, on dash and bash, and must print the same."""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fabops import inventory, monitor
from fabops.inventory import Check
from fabops.host import monitorfacts
from fabops.logs import error_words
from fabops.probe import split_sections
from fabops.shell import lines, sh

pytestmark = pytest.mark.unit


def _host(tmp_path, port_open, port_closed):
    entry = {"connection": "local", "app": {"path": str(tmp_path / "app")}, "home": str(tmp_path / "home"),
             "services": [{"name": "bot", "manager": "process", "command": "x", "port": port_open},
                          {"name": "api", "manager": "process", "command": "y", "port": port_closed}],
             "cleanup": [{"path": str(tmp_path / "temp"), "glob": "*.pcm", "older_than": "1d"},
                         {"path": str(tmp_path / "none"), "glob": "*", "older_than": "1d"}]}
    return inventory.loads(yaml.safe_dump({"hosts": {"h": entry}}), str(tmp_path / "x.yml")).hosts["h"]


def _home(tmp_path, host, pid, start):
    """A home with every file the facts read: a running and a stale
    service, a history with backups (and a record with a backslash), error
    lines in the logs (the update log's of this hour and of two hours ago),
    a death's note, a state moved aside, a cleanup directory with a hard
    link, a subdirectory and an old file."""
    home = Path(host.paths.home)
    (home / "services").mkdir(parents=True)
    now = int(time.time())
    Path(host.paths.state).write_text('{\n  "deployed": "a",\n  "last_check": %d.25\n}\n' % (now - 86400 * 150))
    Path(host.paths.state_aside_prefix + "1700000000000000000").write_text("{")
    Path(host.paths.history).write_text("".join(x + "\n" for x in [
        '{"ts": 1.0, "trigger": "deploy", "result": "ok"}',
        '{"ts": 2.0, "trigger": "backup", "result": "backed_up", "snapshot": "s1"}',
        '{"ts": 3.0, "trigger": "cron", "result": "ok", "message": "a\\\\nb \u00fc"}',
        '{"ts": 4.0, "trigger": "backup", "result": "backup_failed"}']))
    Path(host.paths.service_pid("bot")).write_text(f"{pid} {start}\n")
    Path(host.paths.service_pid("api")).write_text("999999999 1\n")
    Path(host.paths.service_pid("bot") + ".gone").write_text("4242 \n")
    Path(host.paths.service_log("bot")).write_text("Error one\nfine\nTraceback (x)\n")
    Path(host.paths.service_log("api")).write_text("fine\n")
    os.utime(host.paths.service_log("api"), (now - 7200, now - 7200))  # not this hour's: not read
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    old = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now - 7200))
    Path(host.paths.log("update")).write_text("".join(x + "\n" for x in [
        f"{old} [cron] ROLLED_BACK a -> b", f"{stamp} [cron] ROLLED_BACK a -> b", f"{stamp} [cron] ok, an error",
        "a command's output with an error", f"{stamp} [deploy] deployed"]))
    temp = tmp_path / "temp"
    (temp / "sub").mkdir(parents=True)
    for i in range(3):
        (temp / f"f{i}.pcm").write_bytes(os.urandom(5000))
    os.utime(temp / "f2.pcm", (now - 3 * 86400, now - 3 * 86400))
    (temp / "sub" / "x.pcm").write_bytes(os.urandom(9000))
    os.link(temp / "f0.pcm", temp / "hard.pcm")
    (temp / "other.txt").write_text("x")


@pytest.fixture
def home(tmp_path):
    """The host, its home, a running service process and a listening port."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                            start_new_session=True)
    listening, closed = socket.socket(), socket.socket()
    try:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        host = _host(tmp_path, listening.getsockname()[1], closed.getsockname()[1])
        start = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        _home(tmp_path, host, proc.pid, start)
        yield host, proc.pid
    finally:
        listening.close()
        closed.close()
        proc.kill()
        proc.wait()


def _sections(shell, script, tz="America/St_Johns"):
    env = {"PATH": os.environ["PATH"], "TZ": tz, "HOME": os.environ.get("HOME", "/root")}
    out = subprocess.run([shell, "-c", script], capture_output=True, env=env, check=True)
    assert not out.stderr, out.stderr
    return split_sections(out.stdout.decode("utf-8"))


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_the_python3_prints_what_the_shells_programs_print(home, shell):
    host, pid = home
    words = monitor._fact_words(host)
    python = sh("python3 -I -S -c {src} {n} {words}", src=monitor._facts_source(False, False), n=str(len(words)),
                words=words)
    fast, slow = _sections(shell, python), _sections(shell, lines(monitor._shell_facts(host, 0)))
    slow.pop("owners")  # printed by listeners.py, not by monitorfacts
    # df's first columns are spaced for a terminal, and the use moves while the test runs
    assert fast.pop("disk").split()[4:] == slow.pop("disk").split()[4:]
    assert fast == slow
    assert fast["process"].splitlines() == [f"bot active {pid} {int(os.stat(f'/proc/{pid}').st_mtime)}",
                                            "api stale 999999999 -"]
    assert (fast["port:bot"], fast["port:api"]) == ("open", "closed")
    assert fast["tz"] in ("-0330", "-0230") and fast["tzlast"] in ("-0330", "-0230")
    assert fast["backup"].count("\n") == 1 and '"snapshot": "s1"' in fast["backup"]
    assert fast["errors_update"] == "2" and fast["errors"] == "2\n0"
    assert fast["cleanup:0"].split() == [fast["cleanup:0"].split()[0], "4", "3"]
    assert fast["cleanup:1"] == "missing" and fast["gone"] == "bot 4242"


def test_the_monitor_script_starts_no_program_for_a_file(home, tmp_path):
    """The whole script for two process services with ports and a cleanup
    rule, traced: besides its one python3, only what needs a program runs
    (the samples' tail, the tick rate's getconf, one git for the checkout's
    commit and origin's, state.json's cat for `behind` and the python3's
    output's cat)."""
    host, _ = home
    app = host.app.path
    subprocess.run(f"git init -q {app} && git -C {app} -c user.name=t -c user.email=t@t commit -q --allow-empty -m a "
                   f"&& git -C {app} update-ref refs/remotes/origin/main HEAD", shell=True, check=True)
    script = monitor.monitor_script(host, window=0, sample_age=0)
    trace = subprocess.run(["bash", "-xc", script], input="", capture_output=True, text=True, check=True).stderr
    started = [line.lstrip("+ ").split()[0] for line in trace.splitlines() if line.startswith("+")]
    programs = sorted(w for w in started if os.path.sep in w or _program(w))
    assert programs == ["cat", "cat", "getconf", "git", "python3", "tail"], programs


def test_without_python3_the_checks_say_so_and_no_port_has_an_owner(home, tmp_path):
    """A host without python3: the shell's reads, no owner line (read as
    none) and a `no answer` line a check that says why, its specs read from
    stdin to their end (checks.http_check_cmd's words)."""
    host, pid = home
    host = dataclasses.replace(host, services=[dataclasses.replace(
        svc, check=Check(url=f"http://127.0.0.1:{svc.port}/")) for svc in host.services])
    bindir = tmp_path / "no-python3"
    bindir.mkdir()
    for where in os.environ["PATH"].split(os.pathsep):
        for name in (os.listdir(where) if os.path.isdir(where) else []):
            if not name.startswith("python") and not (bindir / name).exists():
                (bindir / name).symlink_to(os.path.join(where, name))
    out = subprocess.run(["sh", "-c", monitor.monitor_script(host, window=0, sample_age=0)],
                         input=monitor.monitor_input(host), capture_output=True, text=True, check=True,
                         env={"PATH": str(bindir), "HOME": os.environ.get("HOME", "/root")}).stdout
    facts = monitor.parse(out, host)
    assert [(s["port_open"], s["port_owner"], s["http_status"]) for s in facts["services"]] == [
        (True, None, None), (False, None, None)], facts["services"]
    assert split_sections(out)["http"].count("no answer (no python3 on the host for the HTTP check)") == 2
    assert facts["services"][0]["pid"] == pid and facts["errors_last_hour"] == 4 and facts["disk"] is not None


def _program(word: str) -> bool:
    """Whether bash -x's word is a program it ran (not a builtin, keyword or assignment)."""
    if "=" in word or word in {"[", "[[", "echo", "printf", "read", "case", "for", "if", "while", "command", "true",
                               "exec", "set", "cd", "return", "break", "local", "test", "shift", ":", "{", "}"}:
        return False
    return subprocess.run(["bash", "-c", f'[ "$(type -t -- "$1")" = file ]', "_", word]).returncode == 0


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_the_journals_size_is_seds_word(tmp_path, shell):
    """The journal section cuts journalctl --disk-usage's word with the
    shell's expansions where it ran sed: the same word, or nothing."""
    unit = inventory.loads(yaml.safe_dump({"hosts": {"h": {
        "connection": "local", "app": {"path": str(tmp_path / "app")},
        "services": [{"name": "api", "manager": "systemd"}]}}}), "x.yml").hosts["h"]
    (part,) = [p for p in monitor._log_parts(unit) if "journal" in p and "disk-usage" in p]
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "journalctl"
    for said in ["Archived and active journals take up 8.0M in the file system.", "Journals take up 1.2G on disk.",
                 "No journal files were found.", "", "it take up 5M", "a take up b take up 7K x"]:
        fake.write_text("#!/bin/sh\nprintf '%s\\n' " + sh("{x}", x=said) + "\n")
        fake.chmod(0o755)
        env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
        got = subprocess.run([shell, "-c", part], capture_output=True, text=True, env=env, check=True).stdout
        sed = subprocess.run(["sed", "-n", "s/.* take up \\([^ ]*\\) .*/\\1/p"], input=said + "\n",
                             capture_output=True, text=True, check=True).stdout
        assert split_sections(got)["journal"] == sed.strip(), (said, got)


def test_the_error_words_are_fixed_strings():
    """monitorfacts matches the words as fixed strings, grep as patterns:
    the same lines only while no word holds a pattern's character."""
    for word in error_words("update")[1::2]:
        assert not set(word) & set(".[]*^$\\") or word.startswith("] "), word
        assert not set(word[1:]) & set(".[*^$\\"), word


def test_the_newest_lines_come_from_the_end_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(monitorfacts, "CHUNK", 7)
    f = tmp_path / "h"
    f.write_bytes(b"one\ntwo three\n\nfour\n")
    assert list(monitorfacts.newest_first(str(f))) == [b"four", b"", b"two three", b"one"]
    f.write_bytes(b"one\ntorn")
    assert list(monitorfacts.newest_first(str(f))) == [b"torn", b"one"]
    assert list(monitorfacts.newest_first(str(tmp_path / "missing"))) == []


@pytest.mark.parametrize("word, at", [
    (b"2026-12-07T20:00:00+0000", 1796673600), (b"2026-12-07T21:00:00+0100", 1796673600),
    (b"2026-02-28T23:59:59-0330", 1772335799), (b"2026-12-07T20:00:00Z", None), (b"x", None)])
def test_an_update_log_time_is_the_awks(word, at):
    assert monitorfacts.log_time(word) == at
