"""env-set, env-unset, env-push (#29, "Secrets without an editor";
docs/maintenance.md): the pure parts (key rules, the value read from
stdin, which services restart, the plan), the host-side merge run by a
real python3, and the tasks on the sandbox host (`connection: local`)."""
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from fabops.errors import CommandFailed, UsageError
from fabops.inventory import App, Host, Service
from fabops.maintenance.envset import (Change, check_key, env_would, merge_cmd, one_value, parse_merge,
                                       parse_unit_files, push_change, readers, required_keys, unit_files_cmd)
from fabops.probe import split_sections
from tests.conftest import ROOT, check_json_output, json_schema

SECRET = "v4lue-n0t-to-be-seen-7d1e"


def _host(tmp_path, *services) -> Host:
    return Host(name="h", address="localhost", app=App(path=str(tmp_path)), services=tuple(services))


# ------------------------------------------------------------------ pure


@pytest.mark.parametrize("key", ["API_TOKEN", "_x", "a1"])
def test_a_variable_name_is_a_key(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", None, "1A", "A-B", "A B", "A=B", "A\nB", "A\x1b[2J", "Ä"])
def test_anything_else_is_refused_and_shown_printable(key):
    with pytest.raises(UsageError) as e:
        check_key(key)
    assert "\x1b" not in str(e.value) and "\n" not in str(e.value)


def test_one_trailing_newline_is_stripped_from_stdin():
    assert one_value("abc\n") == "abc"
    assert one_value("abc\r\n") == "abc"
    assert one_value("abc\n\n") == "abc\n"
    assert one_value("abc") == "abc"


def test_an_empty_value_is_refused_unless_asked_for(tmp_path):
    """Trial: `printf %s "$TOKEN" | inv env-set API_TOKEN` with $TOKEN
    unset wrote `API_TOKEN=` and restarted the service. Refused with exit
    64 before connecting, the dry run too; --allow-empty sets it."""
    from fabops.maintenance.envset import check_not_empty

    assert check_not_empty("A", "", allow_empty=True) == "" and check_not_empty("A", "x", False) == "x"
    inv = tmp_path / "hosts.yml"
    inv.write_text("hosts:\n  h:\n    address: 192.0.2.1\n    app: {path: ~/app}\n")
    for dry in ((), ("--dry-run",)):
        r = cli("env-set", "API_TOKEN", "-H", "h", "-i", str(inv), *dry, stdin="", env={"FABOPS_AGENT": "0"})
        assert r.returncode == 64 and r.stdout == "", r.stdout + r.stderr
        assert "the value of API_TOKEN is empty" in r.stderr and "--allow-empty" in r.stderr, r.stderr
    r = cli("env-set", "API_TOKEN", "-H", "h", "-i", str(inv), "--allow-empty", "--connect-timeout", "1",
            stdin="\n", env={"FABOPS_AGENT": "0"})
    assert "is empty" not in r.stderr and r.returncode == 3, r.stdout + r.stderr  # went on: 192.0.2.1 is unreachable


def test_a_pushed_file_sets_its_keys_and_prunes_only_when_asked():
    change = push_change("# c\nA=1\nexport B='two words'\n")
    assert change.set == {"A": "1", "B": "two words"} and not change.prune and change.unset == []
    assert push_change("A=1\n", prune=True).prune
    with pytest.raises(UsageError):
        push_change("A=\"x\0y\"\n")


def test_only_the_services_whose_unit_reads_the_env_restart(tmp_path):
    """A unit setup wrote: its launcher reads the .env; a unit whose
    EnvironmentFile= names it restarts, one naming another file is kept;
    a process service, or a unit systemctl said nothing about, cannot be
    told and restarts."""
    env = str(tmp_path / ".env")
    host = _host(tmp_path, Service("ours", unit=True, command="x"), Service("reads"), Service("other.service"),
                 Service("unknown"), Service("proc", manager="process", command="x"))
    plan = {r.service: r for r in readers(host, env, {"reads": [env], "other": ["/etc/other.env"]})}
    assert [n for n, r in plan.items() if r.restart] == ["ours", "reads", "unknown", "proc"]
    assert "restart -H h --service other.service`" in plan["other.service"].why
    assert "cannot tell" in plan["unknown"].why and "cannot tell" in plan["proc"].why
    # systemctl printed nothing at all: every unit restarts
    assert all(r.restart for r in readers(host, env, None))


def test_systemctl_show_is_parsed_per_unit():
    out = ("@@fabops:env\n/srv/app/.env\n@@fabops:units\nId=reads.service\n"
           "EnvironmentFiles=/srv/app/.env (ignore_errors=no)\n\nId=other.service\nEnvironmentFiles=\n")
    host = Host(name="h", address="x", app=App(path="/srv/app"), services=(Service("reads"), Service("other")))
    path, files = parse_unit_files(out, host)
    assert path == "/srv/app/.env" and files == {"reads": ["/srv/app/.env"], "other": []}
    assert parse_unit_files("@@fabops:env\n/x\n@@fabops:units\n", host)[1] is None
    # as a booted bookworm's systemctl prints it: EnvironmentFiles= before
    # Id= in each block, whatever order -p asked for (the booted test met it)
    real = ("@@fabops:env\n/srv/app/.env\n@@fabops:units\nEnvironmentFiles=/etc/hostname (ignore_errors=no)\n"
            "EnvironmentFiles=/srv/app/.env (ignore_errors=yes)\nId=reads.service\n\nId=other.service\n")
    assert parse_unit_files(real, host)[1] == {"reads": ["/etc/hostname", "/srv/app/.env"], "other": []}


def test_the_plan_names_keys_and_services_never_a_value(tmp_path):
    host = _host(tmp_path, Service("bot", manager="process", command="x"))
    diff = {"added": ["NEW"], "removed": [], "changed": ["OLD"], "existed": True}
    would = env_would(host, diff, readers(host, "/x", None))
    assert [w.action for w in would] == ["save", "change", "restart"]
    assert "added: NEW" in would[1].why and "changed: OLD" in would[1].why
    assert env_would(host, {"added": [], "removed": [], "changed": [], "existed": True}, []) == []


def test_removing_a_key_the_checkouts_example_needs_is_refused_unless_forced(tmp_path):
    host = _host(tmp_path, Service("bot", manager="process", command="x"))
    diff = {"added": [], "removed": ["DISCORD_TOKEN", "OLD"], "changed": [], "existed": True}
    required = ("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d", ["DISCORD_TOKEN", "PORT"])
    with pytest.raises(CommandFailed) as err:
        env_would(host, diff, readers(host, "/x", None), required)
    assert err.value.exit_code == 2 and str(err.value).endswith(
        ".env.example of 1a2b3c4d5e needs DISCORD_TOKEN: removing it would make the next deploy refuse this host; "
        "--force removes it anyway")
    would = env_would(host, diff, readers(host, "/x", None), required, force=True)
    assert [w.action for w in would] == ["warn", "save", "change", "restart"]
    assert "needs DISCORD_TOKEN: removed anyway (--force)" in would[0].why
    # a key it does not name, or no checkout (no commit, no keys): no refusal
    assert [w.action for w in env_would(host, {**diff, "removed": ["OLD"]}, [], required)] == ["save", "change"]
    assert env_would(host, diff, [], (None, []))[0].action == "save"


def test_the_round_trip_reads_the_checkouts_commit_and_its_example(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    git = ["git", "-C", str(app), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    # a committed line that reads like a section marker stays the file's
    (app / ".env.example").write_text("# needed\nDISCORD_TOKEN=\n@@fabops:units\nexport PORT=3000\n")
    subprocess.run(git + ["add", ".env.example"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    (app / ".env.example").write_text("LOCAL_ONLY=\n")  # the committed one counts, as the preflight's git show
    host = Host(name="h", address="localhost", app=App(path=str(app)), services=())
    out = subprocess.run(["sh", "-c", str(unit_files_cmd(host))], capture_output=True, text=True).stdout
    head = subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert required_keys(out) == (head, ["DISCORD_TOKEN", "PORT"])
    assert "units" not in split_sections(out) or not split_sections(out)["units"].strip(), out
    empty = Host(name="h", address="localhost", app=App(path=str(tmp_path / "none")), services=())
    assert required_keys(subprocess.run(["sh", "-c", str(unit_files_cmd(empty))], capture_output=True,
                                        text=True).stdout) == (None, [])


# ------------------------------------------------- the merge, on a real python3


def _merge(tmp_path, mode, change=None, backup=None):
    host = _host(tmp_path)
    r = subprocess.run(["sh", "-c", str(merge_cmd(host, mode, backup))], input=(change or Change()).stdin(),
                       capture_output=True, text=True)
    return r.returncode, parse_merge(r.stdout), r


def test_the_merge_keeps_other_lines_and_quotes_what_needs_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# keep me\nA=1\nexport B=\"two\nlines\"\nC=3\n")
    os.chmod(env, 0o600)
    code, diff, _ = _merge(tmp_path, "write", Change(set={"B": "it's $x", "D": "new"}, unset=["C"]))
    assert code == 0 and diff["changed"] == ["B"] and diff["added"] == ["D"] and diff["removed"] == ["C"]
    assert env.read_text() == "# keep me\nA=1\nB=\"it's \\$x\"\nD=new\n"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    from fabops.host.preflight import env_pairs

    assert env_pairs(env.read_text()) == {"A": "1", "B": "it's $x", "D": "new"}


def test_a_quote_in_a_comment_opens_nothing(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# don't = quote\nA=1\n; it's\nB=2\n")
    code, diff, _ = _merge(tmp_path, "write", Change(set={"B": "3"}, unset=["A"]))
    assert code == 0 and diff["removed"] == ["A"] and diff["changed"] == ["B"]
    assert env.read_text() == "# don't = quote\n; it's\nB=3\n"


def test_the_plan_writes_nothing_and_prune_removes_unnamed_keys(tmp_path):
    env = tmp_path / ".env"
    env.write_text("A=1\nB=2\n")
    code, diff, _ = _merge(tmp_path, "plan", Change(set={"A": "1"}, prune=True))
    assert code == 0 and diff["removed"] == ["B"] and env.read_text() == "A=1\nB=2\n"
    _merge(tmp_path, "write", Change(set={"A": "1"}, prune=True))
    assert env.read_text() == "A=1\n"


def test_a_restore_puts_the_backup_back_or_removes_a_file_that_was_not_there(tmp_path):
    env, backup = tmp_path / ".env", tmp_path / "saved.env"
    backup.write_text("A=old\n")
    env.write_text("A=new\n")
    code, diff, _ = _merge(tmp_path, "restore", backup=str(backup))
    assert code == 0 and diff["changed"] == ["A"] and env.read_text() == "A=old\n"
    code, _, _ = _merge(tmp_path, "restore")
    assert code == 0 and not env.exists()


def test_a_symlinked_env_is_refused_and_its_target_untouched(tmp_path):
    other = tmp_path / "root-only"
    other.write_text("ROOT=1\n")
    (tmp_path / ".env").symlink_to(other)
    code, _, r = _merge(tmp_path, "write", Change(set={"X": "1"}))
    assert code == 65 and "kind symlink" in r.stdout
    assert other.read_text() == "ROOT=1\n" and (tmp_path / ".env").is_symlink()


def test_a_failed_chown_removes_the_temporary_file_and_says_so(tmp_path):
    """The old .env's owner cannot be given to the new file (a deploy user
    changing a root-owned .env): the temporary copy, which holds the
    values, is removed, the .env is unchanged, and the message names the
    step (exit 66, CommandFailed: exit 2)."""
    from fabops.maintenance import envset

    env = tmp_path / ".env"
    env.write_text("A=1\n")
    # as if another user owned the .env and the kernel refused the chown
    prelude = ("import os\ndef _refused(*a):\n    raise PermissionError(1, 'Operation not permitted')\n"
               "os.fchown = _refused\nos.getuid = lambda: 4242\n")
    r = subprocess.run([sys.executable, "-c", prelude + envset._MERGE, "write", str(env)],
                       input=Change(set={"A": SECRET}).stdin(), capture_output=True, text=True)
    assert r.returncode == envset.WRITE_FAILED
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"] and env.read_text() == "A=1\n"
    message = envset._write_failed(_host(tmp_path), r.stdout)
    assert "the owner of the old one" in message and "Operation not permitted" in message
    assert "temporary copy is removed" in message and SECRET not in r.stdout + r.stderr


# Dotenv text as people write it and as it goes wrong: keys valid and not
# (a digit first, a dash, a space, a non-ASCII letter, the word export),
# export prefixes with a space, a tab or two, blanks around `=`, quotes of
# both kinds (closed, spanning lines, never closed), backslashes (escapes,
# continuations), `#` and `;` (comments, and inside values), CR LF and CR.
_KEYS = ["A", "B_2", "_x", "export", "\u00c4", "1A", "A-B", "a b"]
_BITS = ["x", "y z", " ", "\t", "'", '"', "\\", "#", ";", "=", "$", "`", "\n", "\\\n", "'q\nr'", '"s\\"t"',
         "\r\n", "\r"]


def _dotenv_line(rnd) -> str:
    def bits(most):
        return "".join(rnd.choice(_BITS) for _ in range(rnd.randint(0, most)))

    kind = rnd.random()
    if kind < 0.15:
        return rnd.choice(["#", ";", " #", "\t;"]) + bits(5)
    if kind < 0.2:
        return bits(6)
    lead = rnd.choice(["", " ", "\t", "export ", "export\t", "export  ", " export "])
    return lead + rnd.choice(_KEYS) + rnd.choice(["=", " =", "= ", " = "]) + bits(6)


def _dotenv_text(rnd) -> str:
    return "\n".join(_dotenv_line(rnd) for _ in range(rnd.randint(1, 6))) + rnd.choice(["", "\n"])


def test_the_merges_segments_read_as_env_pairs_reads_the_file():
    """One tokenizer (#29's leftovers: the merge had its own): env_entries
    cuts where env_pairs reads, so over seeded random dotenv text the
    segments cover the text byte for byte, name exactly env_pairs' keys,
    each key's last segment read alone gives its value, and a key's
    segments replaced in place (the first) or dropped (the rest, or all:
    unset), as the merge does, change that key and no other."""
    import random

    from fabops.host.preflight import env_pairs
    from fabops.maintenance.envset import env_entries

    rnd = random.Random(29)
    for _ in range(3000):
        text = _dotenv_text(rnd)
        segs, pairs = env_entries(text), env_pairs(text)
        assert "".join(raw for _, raw in segs) == text
        assert {k for k, _ in segs if k} == set(pairs), (text, segs)
        last = {k: raw for k, raw in segs if k}
        assert {k: env_pairs(raw)[k] for k, raw in last.items()} == pairs, (text, segs)
        for key in pairs:
            first = next(n for n, (k, _) in enumerate(segs) if k == key)
            put = "".join(f"{key}=new\n" if n == first else raw if k != key else "" for n, (k, raw) in enumerate(segs))
            assert env_pairs(put) == {**pairs, key: "new"}, (text, key, put)
            gone = "".join(raw for k, raw in segs if k != key)
            assert env_pairs(gone) == {k: v for k, v in pairs.items() if k != key}, (text, key, gone)


def test_the_real_merge_writes_what_was_asked_or_nothing(tmp_path):
    """The host's merge on seeded random .env files: a key set (new, so
    appended, or replaced) and one unset either read back exactly as asked
    (env_pairs of the written file), or are refused with exit 67 and the
    file untouched: a file whose tail is still inside a quote or a
    continuation would swallow an appended line."""
    import random

    from fabops.host.preflight import env_pairs

    rnd, env = random.Random(2929), tmp_path / ".env"
    for _ in range(25):  # a python3 each: a few seconds on a loaded machine
        text = _dotenv_text(rnd)
        env.write_bytes(text.encode())
        before = env_pairs(text)
        gone = rnd.choice(sorted(before) or ["NONE"])
        key, value = rnd.choice(["A", "NEW_KEY", "_x"]), rnd.choice(["v", "two words", "it's $x", "a\nb"])
        code, _, r = _merge(tmp_path, "write", Change(set={key: value}, unset=[gone] if gone != key else []))
        want = {**{k: v for k, v in before.items() if k != gone}, key: value}
        if code == 67:
            assert env.read_bytes() == text.encode(), (text, r.stdout)
        else:
            assert code == 0 and env_pairs(env.read_text()) == want, (text, key, gone, env.read_text(), r.stderr)


def test_a_merge_that_would_read_otherwise_is_refused(tmp_path):
    """A last line ending in a backslash and no newline: the key appended
    after it would join that value. Refused (exit 67, key names only),
    the file untouched."""
    env = tmp_path / ".env"
    env.write_text("A=x\\")
    code, _, r = _merge(tmp_path, "write", Change(set={"B": SECRET}))
    assert code == 67 and r.stdout.split() == ["unlike", "A", "B"] and env.read_text() == "A=x\\"
    assert SECRET not in r.stdout + r.stderr
    code, diff, _ = _merge(tmp_path, "write", Change(set={"A": "y"}))  # replacing that line is fine
    assert code == 0 and diff["changed"] == ["A"] and env.read_text() == "A=y\n"


# ------------------------------------------------------------- the sandbox


def cli(*args, stdin="", env=None):
    """The real `fabops` with `stdin` (run_cli gives none); --json checked
    against docs/json.schema.json."""
    r = subprocess.run([sys.executable, "-m", "fabops.cli", *args], input=stdin, capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=ROOT, timeout=180)
    check_json_output(args, r)
    return r


def _backups(sandbox):
    d = sandbox.home.parent / "backup" / "env"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_set_backs_up_writes_restarts_and_never_shows_the_value(sandbox):
    sandbox.result()  # deployed: bot runs
    inv, env, pid = str(sandbox.inventory), sandbox.app / ".env", sandbox.pid()
    r = cli("env-set", "API_TOKEN", "-i", inv, "--dry-run", stdin=SECRET + "\n")
    assert r.returncode == 0, r.stderr
    assert "would change .env: keys added: API_TOKEN" in r.stdout and "would restart bot" in r.stdout
    r = cli("env-set", "API_TOKEN", "-i", inv, "--dry-run", "--json", stdin=SECRET + "\n")
    jsonschema.validate(json.loads(r.stdout)["hosts"]["local"], json_schema("env_change"))
    assert SECRET not in env.read_text() and _backups(sandbox) == [] and sandbox.pid() == pid
    r = cli("env-set", "API_TOKEN", "-i", inv, "--debug", stdin=SECRET + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr
    (name,) = _backups(sandbox)
    assert f"-H local --backup {name}`" in r.stdout and "✓ bot ready" in r.stdout
    assert f"API_TOKEN={SECRET}\n" in env.read_text() and "DISCORD_TOKEN=" in env.read_text()
    assert sandbox.pid() != pid, "bot reads the .env: it restarted"
    for f in sandbox.home.rglob("*"):  # history, state, update log: no value anywhere
        assert not f.is_file() or SECRET.encode() not in f.read_bytes(), f
    # #29: recorded in the host's history as a run, key names only
    rec = sandbox.history()[-1]
    assert (rec["trigger"], rec["result"], rec["exit_code"], rec["backup"]) == ("env-set", "changed", 0, name)
    assert rec["message"] == "added API_TOKEN; gate passed" and rec["from"] == rec["to"] == sandbox.state["deployed"]
    r = cli("history", "-i", inv, "-n", "1")
    assert "env-set" in r.stdout and "changed" in r.stdout and "API_TOKEN" in r.stdout, r.stdout
    runs = len(sandbox.history())
    r = cli("env-set", "API_TOKEN", "-i", inv, stdin=SECRET + "\n")
    assert r.stdout == "[local] nothing to change: .env already holds that\n" and len(_backups(sandbox)) == 1
    assert len(sandbox.history()) == runs, "a no-op is not recorded, as the pipeline's"


def test_nothing_words_name_an_absent_key_plainly():
    """#29's trial: env-unset of a key already absent said `.env already
    holds that`, its dry run `no key changes` (envset.nothing_words)."""
    from fabops.maintenance.envset import nothing_words

    assert nothing_words(Change(unset=["MULTI"]), ".env") == "MULTI is not in .env: nothing to change"
    assert nothing_words(Change(unset=["A", "B"]), ".env") == "A, B are not in .env: nothing to change"
    assert nothing_words(Change(set={"A": "x"}), ".env") == "nothing to change: .env already holds that"


def test_unset_of_an_absent_key_says_it_is_not_there(sandbox):
    """#29's trial: `env-unset MULTI` for a key the .env lacks, and its dry
    run, say so in one line, the same words (goldens at 80 and 200
    columns); nothing changed, no backup, no history record."""
    from tests.test_golden import WIDTHS, check

    sandbox.result()
    inv, env = str(sandbox.inventory), sandbox.app / ".env"
    before, runs = env.read_text(), len(sandbox.history())
    for width in WIDTHS:
        for dry in ((), ("--dry-run",)):
            r = cli("env-unset", "MULTI", "-i", inv, *dry, env={"COLUMNS": str(width)})
            assert r.returncode == 0, r.stderr
            assert r.stdout == "[local] MULTI is not in .env: nothing to change\n", r.stdout
        check("env-unset-absent", width, r.stdout)
    assert env.read_text() == before and _backups(sandbox) == [] and len(sandbox.history()) == runs


def test_unset_and_push_change_the_file_and_json_says_keys_only(sandbox, tmp_path):
    sandbox.result()
    inv, env = str(sandbox.inventory), sandbox.app / ".env"
    local = tmp_path / "pushed.env"
    local.write_text(f"NEW_ONE={SECRET}\nDISCORD_TOKEN=other\n")
    r = cli("env-push", str(local), "-i", inv, "--json")
    assert r.returncode == 0, r.stderr
    value = json.loads(r.stdout)["hosts"]["local"]
    assert value["keys"] == {"added": ["NEW_ONE"], "removed": [], "changed": ["DISCORD_TOKEN"]}
    jsonschema.validate(value, json_schema("env_change"))
    assert SECRET not in r.stdout and "PORT=" in env.read_text(), "a key only on the host is kept"
    r = cli("env-unset", "NEW_ONE", "-i", inv, "--json")
    assert json.loads(r.stdout)["hosts"]["local"]["keys"]["removed"] == ["NEW_ONE"]
    assert "NEW_ONE" not in env.read_text() and len(_backups(sandbox)) == 2
    r = cli("env-unset", "1BAD", "-i", inv)
    assert r.returncode == 64 and "not a variable name" in r.stderr


def test_a_failing_gate_puts_the_old_env_back(sandbox):
    sandbox.result()
    inv, env = str(sandbox.inventory), sandbox.app / ".env"
    before = env.read_text()
    free = sandbox.port
    # the sample app listens on PORT from the .env: a port it cannot serve its check on fails the gate
    r = cli("env-set", "PORT", "-i", inv, "--json", stdin="1\n")
    assert r.returncode == 2, r.stdout + r.stderr
    value = json.loads(r.stdout)["hosts"]["local"]
    jsonschema.validate(value, json_schema("env_change"))
    assert value["rolled_back"] and all(x["ok"] for x in value["ready_after_rollback"])
    assert env.read_text() == before and sandbox.health()["status"] == "ok" and free == sandbox.port
    # #29: the failed gate is in the history (monitor's last run, the update log), keys only
    rec = sandbox.history()[-1]
    assert (rec["trigger"], rec["result"], rec["exit_code"], rec["run_id"]) == ("env-set", "reverted", 2,
                                                                                value["run_id"])
    assert rec["message"] == "changed PORT; bot failed its gate", rec
    line = (sandbox.home.parent / "log" / "update.log").read_text().splitlines()[-1]
    assert "[env-set " in line and "] REVERTED at " in line, line


def test_a_symlinked_env_is_refused_on_the_sandbox(sandbox, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("ROOT_ONLY=1\n")
    env = sandbox.app / ".env"
    env.unlink()
    env.symlink_to(target)
    r = cli("env-set", "X", "-i", str(sandbox.inventory), stdin="1\n")
    assert r.returncode == 2 and "symlink" in r.stderr and target.read_text() == "ROOT_ONLY=1\n"


def test_the_schema_refuses_a_value_beside_the_keys():
    """env_change is strict: a `value` (or any key it does not name) is no
    env-set output."""
    good = {"keys": {"added": ["A"], "removed": [], "changed": []}, "services": [], "changed": True,
            "backup": None, "ready": []}
    jsonschema.validate(good, json_schema("env_change"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "value": "x"}, json_schema("env_change"))


def test_each_real_run_is_recorded_with_its_keys_never_a_value(monkeypatch):
    """#29's leftovers: a run that changed the .env (or failed trying)
    leaves one history record (maintenance/common.record_run): trigger
    the task, result changed / reverted / broken / failed, key names only;
    a failure is recorded and raised again; a record that cannot be
    written is a warning, the change standing."""
    from fabops import errors
    from fabops.maintenance import common, envset

    written = []
    monkeypatch.setattr(common, "record_run", lambda c, host, rec, updates: written.append((rec, updates)))
    host = Host(name="h", address="x", app=App(path="/srv/app"), services=(Service("bot"),))
    run = envset.EnvRun(object(), host, "env-push", "ann", "a" * 40, lambda _m: None)
    ok = {"changed": True, "backup": "B.env", "ready": [{"service": "bot", "ok": True}], "rolled_back": False,
          "key_names": {"added": ["API_TOKEN"], "removed": [], "changed": []}}
    value = run.recorded(lambda: ok)
    rec, updates = written[-1]
    assert (rec["trigger"], rec["result"], rec["exit_code"], rec["backup"], updates) == ("env-push", "changed", 0,
                                                                                         "B.env", {})
    assert rec["message"] == "added API_TOKEN; gate passed"
    assert value["run_id"] == rec["run_id"] and "key_names" not in value and rec["from"] == rec["to"] == "a" * 40
    back = {**ok, "ready": [{"service": "bot", "ok": False}], "rolled_back": True}
    run.recorded(lambda: {**back, "ready_after_rollback": [{"service": "bot", "ok": True}]})
    assert (written[-1][0]["result"], written[-1][0]["exit_code"]) == ("reverted", 2)
    assert written[-1][0]["message"] == "added API_TOKEN; bot failed its gate"
    run.recorded(lambda: {**back, "ready_after_rollback": [{"service": "bot", "ok": False}]})
    assert (written[-1][0]["result"], written[-1][0]["exit_code"]) == ("broken", 5)
    assert written[-1][0]["message"].endswith("; not ready on the previous .env either")

    def fails():
        raise errors.CommandFailed("changing .env failed: disk full", host="h")

    with pytest.raises(errors.CommandFailed):
        run.recorded(fails)
    assert (written[-1][0]["result"], written[-1][0]["exit_code"]) == ("failed", 2)
    count = len(written)
    assert run.recorded(lambda: {"changed": False, "backup": None, "ready": []})["changed"] is False
    assert len(written) == count, "another run's same change meanwhile: a no-op, not recorded"

    def unreachable(*_a):
        raise errors.UnreachableError("connection lost", host="h")

    monkeypatch.setattr(common, "record_run", unreachable)
    said = []
    run.say = said.append
    value = run.recorded(lambda: ok)
    assert value["changed"] and value["warnings"] == said and "not in the host's history" in said[0]
    jsonschema.validate({"keys": {"added": [], "removed": [], "changed": []}, "services": [], **value},
                        json_schema("env_change"))


# ------------------------------------------------------------------ goldens

BACKUP = "20261129T134640-000000.env"


def _render(monkeypatch, capsys, width, gate_fails: bool) -> str:
    """A real run's lines as env-set prints them (its progress through
    tasks/maintenance.progress_for), the host side faked: the backup, the merge and
    the restarts' readiness; with `gate_fails`, the way back."""
    from fabops.maintenance import env as env_mod
    from fabops.maintenance import envset
    from fabops.tasks.maintenance import progress_for
    from tests.test_golden import render

    host = Host(name="find-to-do", address="x", app=App(path="/srv/app"),
                services=(Service("voice-meeting-discord-bot", unit=True, command="x"), Service("worker")))
    diff = {"added": ["API_TOKEN"], "removed": [], "changed": ["DISCORD_TOKEN"], "existed": True}
    monkeypatch.setattr(envset, "run_merge", lambda *a, **k: diff)
    monkeypatch.setattr(envset, "plan_with_required", lambda *a, **k: (diff, (None, [])))
    monkeypatch.setattr(env_mod, "backup_env", lambda *a, **k: env_mod.EnvBackup(BACKUP, "/b/" + BACKUP, 42, "0" * 64))
    rounds = iter([not gate_fails, True])

    def restarted(c, h, plan, say):
        ok = next(rounds)
        say("✓ voice-meeting-discord-bot ready" if ok else
            "✗ voice-meeting-discord-bot: exited with code 1 during startup (3 times), see `inv logs`")
        return [{"ok": ok}]

    monkeypatch.setattr(envset, "_restart", restarted)
    plan = envset.readers(host, "/srv/app/.env", {"worker": ["/etc/worker.env"]})
    return render(capsys, monkeypatch, width, envset._apply, object(), host, Change(set={"API_TOKEN": "x"}), plan,
                  progress_for(host))


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("gate_fails", [False, True])
def test_the_real_runs_lines(width, gate_fails, monkeypatch, capsys):
    from tests.test_golden import check

    check("env-set-rolled-back" if gate_fails else "env-set", width, _render(monkeypatch, capsys, width, gate_fails))


@pytest.mark.parametrize("width", [80, 200])
def test_the_dry_runs_lines(width, capsys, monkeypatch):
    from fabops.host.would import lines
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    host = Host(name="find-to-do", address="x", app=App(path="/srv/app"),
                services=(Service("voice-meeting-discord-bot", unit=True, command="x"), Service("worker"),
                          Service("recorder", manager="process", command="x")))
    diff = {"added": ["API_TOKEN"], "removed": ["OLD_KEY"], "changed": [], "existed": True}
    would = env_would(host, diff, readers(host, "/srv/app/.env", {"worker": []}))
    check("env-set-dry-run", width, render(capsys, monkeypatch, width,
                                           lambda: [print_text(x) for x in lines(would, "[find-to-do] ")]))


@pytest.mark.parametrize("width", [80, 200])
def test_a_forced_removal_of_a_required_key_says_so_first(width, capsys, monkeypatch):
    from fabops.host.would import lines
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    host = Host(name="find-to-do", address="x", app=App(path="/srv/app"),
                services=(Service("voice-meeting-discord-bot", unit=True, command="x"),))
    diff = {"added": [], "removed": ["DISCORD_TOKEN"], "changed": [], "existed": True}
    would = env_would(host, diff, readers(host, "/srv/app/.env", {}), ("da7f7c64ce" + "0" * 30, ["DISCORD_TOKEN"]),
                      force=True)
    check("env-unset-forced-dry-run", width, render(capsys, monkeypatch, width,
                                                    lambda: [print_text(x) for x in lines(would, "[find-to-do] ")]))


def test_a_key_lists_label_stays_with_its_value(capsys, monkeypatch):
    """#29's trial: env-push's dry run at 80 columns ended a line in
    `changed:` and put its `-` alone on the next, which read as a list cut
    short. A label goes to the next line with its first value
    (_base.unbroken)."""
    from fabops.host.would import lines
    from fabops.tasks._base import print_text
    from tests.test_golden import check, render

    host = Host(name="local", address="x", app=App(path="/srv/app"), services=(Service("worker"),))
    # `changed:` ends at column 79 here: its ` -` would pass the width
    diff = {"added": ["DB_URL", "SENTRY_DSN"], "removed": [], "changed": [], "existed": False}
    would = env_would(host, diff, readers(host, "/srv/app/.env", {"worker": ["/srv/app/.env"]}))
    text = render(capsys, monkeypatch, 80, lambda: [print_text(x) for x in lines(would, "[local] ")])
    assert "changed: -" in text and not [ln for ln in text.splitlines() if ln.rstrip().endswith(":")], text
    check("env-push-dry-run", 80, text)


def test_a_value_typed_at_the_terminal_is_not_echoed(sandbox):
    """stdin a terminal: the prompt on it, echo off while the value is
    typed; the terminal shows the prompt, never the value."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "fabops.cli", "env-set", "TYPED", "-i", str(sandbox.inventory),
                          "--dry-run"], stdin=slave, stderr=slave, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "200", "FABOPS_AGENT": "0"})
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 60
    try:
        while b"(not echoed): " not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 1024)
        os.write(master, SECRET.encode() + b"\n")
        out, _ = p.communicate(timeout=120)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert p.returncode == 0, (out, seen)
    assert b"TYPED (not echoed): " in seen and SECRET.encode() not in seen
    assert "would change .env: keys added: TYPED" in out and SECRET not in out


def test_removing_a_key_the_deployed_example_needs_is_refused_unless_forced(sandbox, tmp_path):
    """`.env.example` of the sample app names DISCORD_TOKEN and PORT: their
    removal would make the next deploy's preflight refuse the host."""
    sandbox.result()
    inv, env, pid = str(sandbox.inventory), sandbox.app / ".env", sandbox.pid()
    before, short = env.read_text(), sandbox.state["deployed"][:10]
    said = (f".env.example of {short} needs DISCORD_TOKEN: removing it would make the next deploy refuse this "
            "host; --force removes it anyway")
    for dry in ([], ["--dry-run"]):
        r = cli("env-unset", "DISCORD_TOKEN", "-i", inv, *dry)
        assert r.returncode == 2 and said in r.stderr, r.stdout + r.stderr
    local = tmp_path / "pushed.env"
    local.write_text("PORT=" + str(sandbox.port) + "\nNEW_ONE=x\n")
    r = cli("env-push", str(local), "--prune", "-i", inv)
    assert r.returncode == 2 and said in r.stderr, r.stdout + r.stderr
    assert env.read_text() == before and _backups(sandbox) == [] and sandbox.pid() == pid, "nothing changed"
    r = cli("env-unset", "DISCORD_TOKEN", "-i", inv, "--force")
    # forced: done, and a warning that stays (exit 1, the record's warnings), as --allow-unverified's
    assert r.returncode == 1 and "warning: .env.example of" in r.stdout and "removed anyway" in r.stdout, r.stderr
    assert "DISCORD_TOKEN" not in env.read_text() and len(_backups(sandbox)) == 1
    rec = sandbox.history()[-1]
    assert (rec["result"], rec["exit_code"]) == ("changed", 1) and "removed anyway (--force)" in rec["warnings"][0]
    env.write_text(before)
    r = cli("env-push", str(local), "--prune", "--force", "-i", inv, "--json")
    assert r.returncode == 1, r.stderr
    got = json.loads(r.stdout)["hosts"]["local"]
    assert "removed anyway (--force)" in got["warnings"][0], got
    assert "DISCORD_TOKEN" not in env.read_text() and "NEW_ONE=x" in env.read_text()


def test_a_removal_is_judged_by_the_checkout_under_the_lock(sandbox, monkeypatch):
    """env-unset and restore-env read what the checkout's .env.example
    requires before they take the lock (to refuse early and for the dry
    run), and again under it: a deploy that ran in between (here: a commit
    requiring LATER, made just before the lock is taken) moves what the
    removal is judged by, and the run refuses (exit 2) instead of leaving a
    .env the next deploy refuses."""
    from invoke import Context

    from fabops import inventory, remote
    from fabops.errors import CommandFailed
    from fabops.maintenance import env as env_mod
    from fabops.maintenance import envset

    sandbox.result()
    host = inventory.load(str(sandbox.inventory)).hosts["local"]
    env = sandbox.app / ".env"
    lacking = env_mod.backup_env(Context(), host, keep=10)  # a backup without LATER
    env.write_text(env.read_text() + "LATER=x\n")
    git = ["git", "-C", str(sandbox.app), "-c", "user.name=t", "-c", "user.email=t@t"]
    example = sandbox.app / ".env.example"
    real_enter = remote.RemoteLock.__enter__

    def a_deploy_meanwhile(lock):
        if "LATER" not in example.read_text():
            example.write_text(example.read_text() + "LATER=\n")
            subprocess.run(git + ["commit", "-q", "-am", "needs LATER"], check=True)
        return real_enter(lock)

    monkeypatch.setattr(remote.RemoteLock, "__enter__", a_deploy_meanwhile)
    pid, before = sandbox.pid(), env.read_text()
    with pytest.raises(CommandFailed, match="needs LATER: removing it would make the next deploy refuse"):
        envset.env_change(Context(), host, envset.Change(unset=["LATER"]), "t@t", "env-unset")
    assert env.read_text() == before and sandbox.pid() == pid
    # restore-env of the backup without LATER: fine before the lock, refused under it
    subprocess.run(git + ["reset", "-q", "--hard", "HEAD~1"], check=True)
    with pytest.raises(CommandFailed, match=f"needs LATER: restoring {lacking.name} without it"):
        env_mod.restore_env(Context(), host, lacking.name, "t@t")
    assert env.read_text() == before and sandbox.pid() == pid
