"""The task tree as a user meets it: `inv --list`, `--help`, exit codes."""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fabops.tasks import ns
from tests.conftest import ROOT, require, run_cli

INV = str(Path(sys.executable).parent / "inv")


def test_inv_list_shows_every_task_with_a_summary():
    r = subprocess.run([INV, "--list"], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    for name in ns.task_names:
        line = next((ln for ln in r.stdout.splitlines() if ln.strip().startswith(name + " ")), None)
        assert line is not None, f"{name} missing from inv --list"
        assert len(line.split(None, 1)) == 2, f"{name} has no summary"


def test_fabops_program_serves_the_same_tree():
    r = run_cli("--list")
    assert r.returncode == 0
    for name in ns.task_names:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(ns.task_names))
def test_every_flag_is_documented(name):
    task = ns[name]
    summary = (task.__doc__ or "").strip().splitlines()[0]
    assert summary and summary[0].isupper() and summary.endswith("."), f"{name}: docstring summary"
    for arg in task.get_arguments():
        assert arg.help, f"{name} --{arg.name} has no help"


def test_hosts_flag_is_capital_h():
    names = {tuple(a.names) for a in ns["ping"].get_arguments()}
    assert ("hosts", "H") in names


def test_unknown_task_and_bad_flag_are_usage_errors():
    assert run_cli("no-such-task").returncode == 64
    assert run_cli("ping", "--no-such-flag").returncode == 64


def test_unknown_host_exits_64_listing_known_names():
    r = run_cli("ping", "-H", "find-to-dos")
    assert r.returncode == 64
    assert "unknown host or group 'find-to-dos' (did you mean 'find-to-do'?)" in r.stderr
    assert "known: find-to-do, local, production, sandbox" in r.stderr


def test_bad_flag_value_is_a_usage_error_not_config():
    r = run_cli("ping", "-H", "local", "--parallel", "0")
    assert r.returncode == 64 and "--parallel must be at least 1" in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("hosts: {a: {port: x}}")
    quiet = run_cli("hosts", "-i", str(bad))
    loud = run_cli("hosts", "-i", str(bad), env={"FABOPS_DEBUG": "1"})
    assert quiet.returncode == 78 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "ConfigError" in loud.stderr
    assert loud.returncode == 78, "--debug adds the traceback; the exit code stays the documented one"


def test_hosts_table_and_json():
    r = run_cli("hosts")
    assert r.returncode == 0 and "find-to-do" in r.stdout and "voice-meeting-discord-bot.service" in r.stdout
    import json

    data = json.loads(run_cli("hosts", "--json").stdout)
    assert data["default"] == "find-to-do"
    assert data["hosts"]["find-to-do"]["services"][1]["port"] == 3003


def test_local_sandbox_ping():
    r = run_cli("ping", "-H", "local", "--json")
    assert r.returncode == 0, r.stderr
    assert '"kernel": "Linux' in r.stdout


def test_local_needs_linux(monkeypatch):
    from fabops import inventory
    from fabops.connection import connect
    from fabops.errors import UsageError

    host = inventory.load(str(ROOT / "hosts.yml")).hosts["local"]
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(UsageError, match="connection: local needs Linux"):
        connect(host)


# --------------------------------------------------------------------------
# The command-line contract: one flag vocabulary, usage errors, selection


def test_one_flag_vocabulary_for_every_task():
    """Every task parameter is in FLAGS, gets exactly the letter FLAGS gives
    it (or none), and no letter stands for two long names anywhere."""
    from fabops.tasks._base import FLAGS

    letters = [f.short for f in FLAGS.values() if f.short]
    assert len(letters) == len(set(letters)), "a short letter is given to two long names in FLAGS"
    assert "h" not in letters  # --help
    assert FLAGS["accept_new"].short is None  # trusting a host key is typed in full
    seen = {}
    for name in ns.task_names:
        for arg in ns[name].get_arguments():
            param = arg.attr_name or arg.name
            assert param in FLAGS, f"{name}: --{arg.name} is not in FLAGS"
            shorts = sorted(n for n in arg.names if len(n) == 1 and n != param)
            want = [FLAGS[param].short] if FLAGS[param].short and FLAGS[param].short != param else []
            assert shorts == want, f"{name} --{arg.name}: short flags {shorts}, FLAGS says {want}"
            for letter in shorts:
                assert seen.setdefault(letter, param) == param, f"-{letter} means two things"


def test_a_new_parameter_missing_from_flags_is_refused():
    from invoke import Collection

    from fabops.tasks._base import fabops_task

    @fabops_task(help={"colour": "x"})
    def paint(c, colour=None):
        """Paint."""

    with pytest.raises(ValueError, match="'colour' is not in fabops.tasks._base.FLAGS"):
        Collection(paint).to_contexts()


@pytest.mark.parametrize("args, flag", [
    (("ping", "-H", "local", "--parallel", "abc"), "--parallel takes a whole number"),
    (("ping", "-H", "local", "--connect-timeout", "2x"), "--connect-timeout takes seconds, like 30, 30s or 2m"),
    (("deploy", "-H", "local", "--liveness", "abc"), "--liveness takes seconds"),
    (("deploy", "-H", "local", "--wait", "-1"), "--wait takes seconds"),
    (("deploy", "-H", "local", "--rolling", "1.5"), "--rolling takes a whole number"),
    (("history", "-H", "local", "-n", "many"), "fabops: -n takes a whole number"),
    (("history", "-H", "local", "-n", "-3"), "fabops: history -n must be at least 1, not -3"),  # history's own bound
    (("logs", "-H", "local", "-n", "-3"), "fabops: -n cannot be negative, not -3"),
    (("health", "-H", "local", "--timeout", "0"), "--timeout must be more than 0 seconds"),
    (("monitor", "-H", "local", "--watch", "0s"), "--watch must be more than 0 seconds"),
    (("backup-env", "-H", "local", "--keep", "0"), "--keep must be at least 1"),
    # the bounds the task bodies used to check themselves (#23): read_number
    # alone refuses them now
    (("ping", "-H", "local", "--parallel", "-2"), "--parallel must be at least 1"),
    (("ping", "-H", "local", "--connect-timeout", "0"), "--connect-timeout must be more than 0 seconds"),
    (("deploy", "-H", "local", "--parallel", "0"), "--parallel must be at least 1"),
    (("deploy", "-H", "local", "--connect-timeout", "0s"), "--connect-timeout must be more than 0 seconds"),
    (("deploy", "-H", "local", "--liveness", "0"), "--liveness must be more than 0 seconds"),
    (("deploy", "-H", "local", "--rolling", "-1"), "--rolling cannot be negative, not -1"),
    (("rollback", "-H", "local", "--connect-timeout", "0"), "--connect-timeout must be more than 0 seconds"),
    (("health", "-H", "local", "--connect-timeout", "0"), "--connect-timeout must be more than 0 seconds"),
])
def test_bad_numbers_are_usage_errors_naming_the_flag(args, flag):
    r = run_cli(*args)
    assert r.returncode == 64, r.stdout + r.stderr
    assert flag in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_durations_take_the_documented_forms():
    from fabops.tasks._base import read_number

    assert read_number("wait", "2m") == 120 and read_number("wait", "0") == 0
    assert read_number("connect_timeout", "250ms") == 0.25 and read_number("liveness", 5.0) == 5.0
    assert read_number("parallel", " 4 ") == 4 and read_number("watch", True) is True  # deploy --watch
    assert read_number("connect_timeout", None) is None


@pytest.mark.parametrize("value, message", [
    ("", "-H is empty"), ("  ", "-H is empty"), ("local,", "has an empty entry"),
    ("nomatch*", "-H pattern 'nomatch*' matched nothing"),
])
def test_a_blank_or_empty_selection_is_never_the_default(value, message):
    r = run_cli("ping", "-H", value)
    assert r.returncode == 64 and message in r.stderr, r.stderr


def test_patterns_match_host_and_group_names(tmp_path):
    from fabops import inventory
    from fabops.errors import UsageError

    path = tmp_path / "hosts.yml"
    path.write_text("default: db\ndefaults: {app: {path: /srv/app}}\nhosts:\n  web1: {}\n  web2: {}\n  db: {}\n"
                    "groups:\n  webs: [web1, web2]\n")
    inv = inventory.load(str(path))
    assert [h.name for h in inv.select("web*")] == ["web1", "web2"]
    assert [h.name for h in inv.select("we?s,db")] == ["web1", "web2", "db"]
    assert [h.name for h in inv.select("*")] == ["web1", "web2", "db"]
    assert [h.name for h in inv.select(None)] == ["db"]
    with pytest.raises(UsageError, match="matched nothing"):
        inv.select("app*")
    with pytest.raises(UsageError, match="-H is empty"):
        inv.select("")


def test_hosts_before_the_task_name():
    r = run_cli("-H", "local", "ping", "--json")
    assert r.returncode == 0 and '"local"' in r.stdout, r.stderr
    r = run_cli("-H", "local", "ping", "-H", "sandbox")
    assert r.returncode == 64 and "-H given twice" in r.stderr
    r = run_cli("-H", "local", "hosts")
    assert r.returncode == 64 and "hosts does not take -H" in r.stderr
    r = run_cli("-H", "local", "--hosts=sandbox", "ping")  # once read `sandbox` as a task
    assert r.returncode == 64 and "-H given twice before the task name" in r.stderr, r.stderr
    r = subprocess.run([INV, "-H", "local", "ping"], cwd=ROOT, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)  # Invoke's own program has no global -H
    assert r.returncode == 64 and "put it after: `inv TASK -H NAME`" in r.stderr, r.stderr


@pytest.mark.parametrize("core, word", [("--dry", "--dry-run"), ("--echo", "--debug")])
def test_invokes_dry_and_echo_are_refused_not_ignored(core, word, tmp_path):
    """`inv --dry deploy` once really deployed: Invoke's core flags only reach
    c.run(), which fabops does not use for its work."""
    marker = tmp_path / "ran"
    r = subprocess.run([INV, core, "ping", "-H", "local"], cwd=ROOT, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 64 and word in r.stderr, r.stdout + r.stderr
    assert not marker.exists() and "Linux" not in r.stdout  # ping did not run


@pytest.mark.parametrize("argv, message", [
    (["deploi"], "unknown task 'deploi' (did you mean 'deploy'?)"),
    (["deploy", "--paralel", "2"], "unknown flag '--paralel' for deploy (did you mean '--parallel'?)"),
])
@pytest.mark.parametrize("program", ["inv", "fabops"])
def test_unknown_tasks_and_flags_exit_64_with_did_you_mean(program, argv, message):
    cmd = [INV] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    r = subprocess.run(cmd + argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 64, r.stderr
    assert r.stderr.strip() == f"{program}: {message}; see `{program} " + (
        "--list`" if argv == ["deploi"] else "deploy --help`")


@pytest.mark.parametrize("argv", [["hosts"], ["deploy", "--help"], ["--list"]])
@pytest.mark.parametrize("program", ["inv", "fabops"])
def test_a_closed_pipe_ends_quietly(program, argv):
    """`fabops history | head`: the reader is gone before we write a byte."""
    read, write = os.pipe()
    os.close(read)
    cmd = [INV] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    try:
        r = subprocess.run(cmd + argv, cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, env=dict(os.environ, COLUMNS="200"))
    finally:
        os.close(write)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode in (0, 141)


def test_plain_progress_announces_long_steps_and_beats_every_ten_seconds(capsys):
    """CI logs never go quiet: a step running over 2 s gets a start line,
    then one line every 10 s, driven by the host's 1 s heartbeats."""
    from fabops.tasks.deploy import _Printer

    now = [0.0]
    on_event = _Printer(5, clock=lambda: now[0])("h1")
    on_event({"kind": "step", "step": "deps", "status": "start"})
    for t in (1.0, 2.5, 5.0, 9.9, 10.2, 15.0, 20.5):
        now[0] = t
        on_event({"kind": "heartbeat", "step": "deps"})
    on_event({"kind": "step", "step": "deps", "status": "ok", "seconds": 21.0})
    now[0] = 40.0
    on_event({"kind": "heartbeat", "step": None})  # between steps: nothing
    on_event({"kind": "step", "step": "fetch", "status": "start"})
    on_event({"kind": "step", "step": "fetch", "status": "ok", "seconds": 0.3})  # a quick step: one line
    lines = [ln.split(None, 1)[1] for ln in capsys.readouterr().out.splitlines()]
    assert lines == ["… deps started", "… deps 10 s", "… deps 20 s", "✓ deps (21.00s)", "✓ fetch (0.30s)"]


def test_every_local_task_prints_the_one_json_envelope(tmp_path):
    """Each task's --json against the `connection: local` sandbox host, run
    for real and validated by run_cli against docs/json.schema.json (the
    ssh and systemd tiers validate the rest the same way)."""
    from tests.conftest import JSON_SEEN

    runs = [("hosts",), ("ping", "-H", "local"), ("monitor", "-H", "local"), ("status", "-H", "local"),
            ("history", "-H", "local"), ("health", "-H", "local"), ("unpin", "-H", "local", "--dry-run"),
            ("restart", "-H", "local", "--dry-run"), ("clean", "-H", "local", "--dry-run"),
            ("local-update", "-H", "local", "--dry-run"), ("deploy", "-H", "local", "--dry-run")]
    for args in runs:
        r = run_cli(*args, "--json")
        assert r.stdout.strip(), f"{args}: no JSON (rc={r.returncode}, stderr={r.stderr!r})"
        assert args[0] in JSON_SEEN
    r = run_cli("ping", "-H", "nosuchhost", "--json")  # stopped before any host: still one envelope
    assert r.returncode == 64 and json.loads(r.stdout)["hosts"] == {} and "nosuchhost" in json.loads(r.stdout)["error"]


COMPLETION_HOSTS = """\
default: web1
defaults: {app: {path: /srv/app}}
hosts:
  web1: {connection: local, home: /tmp/w1}
  web2: {connection: local, home: /tmp/w2}
  db: {connection: local, home: /tmp/db}
groups:
  web: [web1, web2]
"""

BASH_CASES = [
    # (words, what the user sees offered)
    (["inv", "deploy", "-H", ""], ["web1", "web2", "db", "web", "all"]),
    (["fabops", "-H", "w"], ["web1", "web2", "web"]),
    (["inv", "logs", "--hosts", "web1,"], ["web1,web2", "web1,db", "web1,web", "web1,all"]),
    (["inv", "deploy", "-H", "db", "--dr"], ["--dry-run"]),
    (["inv", "deploy", "--hosts", "=", "w"], ["web1", "web2", "web"]),  # bash splits `--hosts=w` at "="
    (["inv", "deploy", "--hosts", "="], ["web1", "web2", "db", "web", "all"]),  # `--hosts=<TAB>`
    (["inv", "deplo"], ["deploy"]),
]


@pytest.mark.parametrize("words, offered", BASH_CASES)
def test_bash_completes_host_and_group_names_after_h(tmp_path, words, offered):
    """The script `fabops --print-completion-script bash` prints, sourced in
    a real bash, asked the way bash asks (COMP_WORDS, COMP_CWORD, then the
    function with command, current word and previous word)."""
    require(shutil.which("bash") is not None, "bash")
    (tmp_path / "hosts.yml").write_text(COMPLETION_HOSTS)
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    bindir = str(Path(sys.executable).parent)
    quoted = " ".join(shlex.quote(w) for w in words)
    script = (f"source <({bindir}/fabops --print-completion-script bash)\n"
              f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
              f"_fabops_complete {shlex.quote(words[0])} {shlex.quote(words[-1])} {shlex.quote(words[-2])}\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"]))
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(offered), r.stdout + r.stderr


def test_zsh_completes_host_and_group_names_after_h(tmp_path):
    """The zsh script under a real zsh with compinit. compadd and _files only
    work inside a completion widget, so they are replaced by printers; what
    is tested is that the words, the empty current word and the inventory
    reach fabops and come back as candidates."""
    require(shutil.which("zsh") is not None, "zsh (.ci/run installs it)")
    (tmp_path / "hosts.yml").write_text(COMPLETION_HOSTS)
    (tmp_path / "other.yml").write_text(COMPLETION_HOSTS.replace("db", "cache"))
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    bindir = str(Path(sys.executable).parent)
    script = (f"autoload -U compinit; compinit -u -D\n"
              f"source <({bindir}/fabops --print-completion-script zsh)\n"
              "compadd() { [[ $1 == -- ]] && shift; print -l -- \"$@\"; }\n"
              "_files() { print FILES; }\n"
              "words=(fabops deploy -H ''); CURRENT=4; _fabops_complete; print -r -- ---\n"
              "words=(inv deploy -i other.yml -H web1,c); CURRENT=6; _fabops_complete; print -r -- ---\n"
              "words=(inv deploy --inventory ''); CURRENT=4; _fabops_complete\n")
    r = subprocess.run(["zsh", "-f", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    first, second, third = r.stdout.split("---\n")
    assert sorted(first.split()) == sorted(["web1", "web2", "db", "web", "all"]), r.stdout
    assert "web1,cache" in second.split() and "web1,db" not in second, r.stdout
    assert third.split() == ["FILES"], r.stdout  # a path: the shell completes files


def test_completion_of_a_broken_inventory_offers_nothing_and_never_a_traceback(tmp_path):
    (tmp_path / "hosts.yml").write_text("hosts: [\n")
    r = subprocess.run([sys.executable, "-m", "fabops.cli", "--complete", "--", "fabops", "deploy", "-H", ""],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and "Traceback" not in r.stderr, r.stdout + r.stderr


def test_echo_in_an_invoke_config_file_is_not_the_echo_flag(tmp_path):
    """`run: {echo: true}` in invoke.yaml is a user's c.run() preference; an
    earlier fabops read it as `--echo` and refused every task with exit 64."""
    (tmp_path / "hosts.yml").write_text(COMPLETION_HOSTS)
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    (tmp_path / "invoke.yaml").write_text("run:\n  echo: true\n  dry: true\n")
    r = subprocess.run([INV, "hosts", "--json"], cwd=tmp_path, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and '"web1"' in r.stdout, r.stdout + r.stderr
    r = subprocess.run([INV, "--echo", "hosts"], cwd=tmp_path, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 64 and "--debug" in r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("program", ["inv", "fabops"])
def test_help_names_what_a_value_is(program):
    """Invoke's help says `=STRING` for every value; fabops reads its numbers
    itself, so the help says what to type."""
    cmd = [INV] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    r = subprocess.run(cmd + ["deploy", "--help"], cwd=ROOT, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, COLUMNS="200"))
    assert r.returncode == 0, r.stderr
    assert "--wait=SECONDS" in r.stdout and "-p N, --parallel=N" in r.stdout and "--ref=VALUE" in r.stdout
    assert "STRING" not in r.stdout
    if program == "fabops":  # Invoke's own core flags too
        core = subprocess.run(cmd + ["--help"], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, COLUMNS="200")).stdout
        assert "-D N, --list-depth=N" in core and "=STRING" not in core and "=INT" not in core, core


def test_importing_the_tasks_leaves_invokes_classes_alone():
    """The parse contract is a subclass of Invoke's Program (tasks/program.py),
    not a patch: Invoke's Program, ParserContext and Task keep their own code."""
    import invoke
    from invoke import Program, Task
    from invoke.parser import ParserContext

    home = str(Path(invoke.__file__).parent)  # with fabops.tasks imported (ns, above)
    for cls, names in ((Program, ("parse_core", "parse_tasks", "parse_cleanup")), (ParserContext, ("help_for",)),
                       (Task, ("arg_opts", "__call__"))):
        for name in names:
            code = getattr(cls, name).__code__
            assert code.co_filename.startswith(home), f"{cls.__name__}.{name} is {code.co_filename}"


def test_inv_gets_the_contract_on_its_own_program_only(monkeypatch):
    """Under `inv`, loading the tree gives Invoke's running program (and only
    it) the TaskProgram class; a program that is someone's subclass is kept."""
    from types import SimpleNamespace

    from invoke import Program

    from fabops import shell
    from fabops.tasks.program import FabopsProgram, TaskProgram, serve_inv

    monkeypatch.setattr(shell, "_PROGRAM", ["fabops"])  # serve_inv names `inv` for the hints: this test's only
    invs = Program(name="Invoke", binary="inv[oke]")
    monkeypatch.setitem(sys.modules, "invoke.main", SimpleNamespace(program=invs))
    serve_inv()
    assert type(invs) is TaskProgram and invs.prog == "inv"
    other = FabopsProgram(namespace=ns, binary="fabops")
    monkeypatch.setitem(sys.modules, "invoke.main", SimpleNamespace(program=other))
    serve_inv()
    assert type(other) is FabopsProgram
    assert type(Program()) is Program


@pytest.mark.parametrize("argv, message", [
    (["deploy", "-H", "local", "--ref"], "fabops: --ref (-r) needs a value; see `fabops deploy --help`"),
    (["ping", "-x"], "fabops: unknown flag '-x' for ping; see `fabops ping --help`"),
    # Invoke's core --list after a task without one listed the tasks, exit 0 (trial)
    (["restore-env", "-H", "local", "--list"], "fabops: unknown flag '--list' for restore-env; "
                                                "see `fabops restore-env --help`"),
    (["agent"], "fabops: agent needs 'action'; see `fabops agent --help`"),
    # a value flag given twice: Invoke took no second value and read it as a task (trial)
    (["status", "-H", "local", "--hosts", "local"], "fabops: --hosts given twice for status; give it once "
                                                    "(-H a,b selects both)"),
    (["logs", "-n", "3", "-n", "4"], "fabops: -n given twice for logs; give it once"),
    (["deploy", "--dry-run", "nosuch"], "fabops: unknown task 'nosuch'; see `fabops --list`"),  # Invoke's 'did not receive …
    (["--help", "deploi"], "fabops: unknown task 'deploi' (did you mean 'deploy'?); see `fabops --list`"),
    (["ping", "--no-json"], "fabops: unknown flag '--no-json' for ping (did you mean '--json'?); see `fabops ping --help`"),
])
def test_other_parse_errors_are_one_usage_line(argv, message, capsys):
    """The unknown word comes from Invoke's parser (ignore_unknown stops at
    it), never from its message; any other parse error keeps Invoke's words."""
    from fabops.tasks.program import FabopsProgram

    with pytest.raises(SystemExit) as exit_:
        FabopsProgram(namespace=ns, name="fabops", binary="fabops").run(["fabops", *argv])
    assert exit_.value.code == 64
    assert capsys.readouterr().err.strip() == message


def test_fabops_tasks_take_letters_only_from_flags():
    """Invoke would give `--install` the letter -i (the inventory's) and
    `--source` -s (the service's); FabopsTask turns its letters off."""
    from fabops.tasks._base import FabopsTask

    assert all(not ns[name].auto_shortflags for name in ns.task_names)
    assert all(isinstance(ns[name], FabopsTask) for name in ns.task_names)


def test_numbers_given_by_position_are_read_too():
    """Task bodies never check their numbers again (#23): FabopsTask reads a
    value passed by position (a call from Python) as it reads a flag."""
    from invoke import Context, Exit

    from fabops.tasks._base import fabops_task

    seen = {}

    @fabops_task
    def sized(c, parallel=10, wait=None):
        """Sized."""
        seen.update(parallel=parallel, wait=wait)

    sized(Context(), "4", wait="2m")
    assert seen == {"parallel": 4, "wait": 120}
    with pytest.raises(Exit) as exit_:
        sized(Context(), "0")
    assert exit_.value.code == 64 and "--parallel must be at least 1" in exit_.value.message


def test_a_host_error_reads_the_same_in_tables_stderr_and_json(capsys):
    """One helper, error_text, for every place a host's error is shown (#23)."""
    from types import SimpleNamespace

    from fabops.errors import UnreachableError
    from fabops.tasks._base import envelope, error_text
    from fabops.tasks.render import host_errors

    results = [SimpleNamespace(host="a", ok=False, code=3, error=UnreachableError("refused", host="a")),
               SimpleNamespace(host="b", ok=False, code=70, error=KeyError("port"))]
    assert [error_text(r.error) for r in results] == ["refused", "KeyError: 'port'"]
    assert envelope(results)["hosts"]["b"] == {"error": "KeyError: 'port'", "code": 70}
    host_errors(results)
    assert capsys.readouterr().err == "fabops: a: refused\nfabops: b: KeyError: 'port'\n"


def test_the_github_summary_shows_a_host_error_as_error_text(tmp_path, monkeypatch):
    """deploy's run-page summary says what tables and --json say (#23)."""
    from types import SimpleNamespace

    from fabops.errors import UnreachableError
    from fabops.tasks.deploy import _github_summary

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _github_summary(SimpleNamespace(results=[
        SimpleNamespace(host="a", ok=False, code=3, error=UnreachableError("refused", host="a")),
        SimpleNamespace(host="b", ok=False, code=70, error=KeyError("port"))]))
    text = summary.read_text()
    assert "| a | error: refused |" in text and "| b | error: KeyError: 'port' |" in text


# Invoke's core flags that mean nothing for a fabops task (tasks/program.py,
# REFUSED_CORE), as a user may type them: each is exit 64 on one line, under
# both programs, before any task runs.
REFUSED = [["--prompt-for-sudo-password"], ["--dry"], ["-R"], ["--echo"], ["-e"], ["--write-pyc"],
           ["--hide", "both"], ["--pty"], ["-p"], ["--warn-only"], ["-w"], ["--command-timeout", "5"],
           ["-T", "5"], ["--config", "x.yml"], ["-f", "x.yml"]]


@pytest.mark.parametrize("program", ["inv", "fabops"])
@pytest.mark.parametrize("flag", REFUSED, ids=lambda f: f[0])
def test_invokes_core_flags_that_mean_nothing_for_fabops_are_usage_errors(program, flag, tmp_path):
    """Without a terminal, --prompt-for-sudo-password was a termios traceback
    (#24); -T 5 timed nothing out, -w warned of nothing, -f read a file
    fabops never looks at. Refused before any task runs: `hosts` here would
    otherwise print the inventory and exit 0."""
    (tmp_path / "hosts.yml").write_text(COMPLETION_HOSTS)
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    cmd = [INV] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    r = subprocess.run(cmd + flag + ["hosts"], cwd=tmp_path, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 64, r.stdout + r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{program}: Invoke's --") and "does not apply to fabops tasks: " in r.stderr
    assert len(r.stderr.splitlines()) == 1 and flag[0] in r.stderr, r.stderr


def test_fabops_help_hides_the_refused_core_flags_and_says_what_debug_does():
    from fabops.tasks.program import REFUSED_CORE

    r = run_cli("--help", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    core = r.stdout.split("Subcommands:")[0]
    for name in REFUSED_CORE:
        assert f"--{name}" not in core, name
    for kept in ("--debug", "--list", "--version", "--hosts", "--print-completion-script"):
        assert kept in core
    assert "Show each command fabops runs" in " ".join(core.split())


@pytest.mark.parametrize("program", ["inv", "fabops"])
def test_debug_is_fabops_commands_and_tracebacks_not_invokes_parser_log(program, tmp_path):
    """`fabops --debug status` printed 117 lines of Invoke's parser debug
    (#24). --debug now means one thing: each command fabops runs, with its
    exit and duration, and the traceback of an error."""
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    cmd = [INV] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    r = subprocess.run(cmd + ["--debug", "ping", "-H", "local", "-i", str(ROOT / "hosts.yml")], cwd=tmp_path,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    shown = [ln for ln in r.stderr.splitlines() if ln.startswith("fabops: debug: local: ")]
    assert shown and all(ln.endswith(" s)") and "(exit 0, " in ln for ln in shown), r.stderr
    invokes = [ln for ln in r.stderr.splitlines() if ln.startswith("invoke.")]
    # under inv, Invoke's loader logs its three lines before tasks.py loads
    # and fabops can take --debug back; none from the parser after that
    assert len(invokes) <= (3 if program == "inv" else 0) and "invoke.parser" not in r.stderr, r.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts: {a: {port: x}}")
    r = subprocess.run(cmd + ["--debug", "hosts", "-i", str(bad)], cwd=tmp_path, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert "Traceback" in r.stderr and "ConfigError" in r.stderr, r.stderr
    quiet = subprocess.run(cmd + ["ping", "-H", "local", "-i", str(ROOT / "hosts.yml")], cwd=tmp_path,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert quiet.returncode == 0 and "debug" not in quiet.stderr, quiet.stderr
    # after the task name, as README lists it beside -H: the same (it was ignored)
    after = subprocess.run(cmd + ["ping", "-H", "local", "-i", str(ROOT / "hosts.yml"), "--debug"], cwd=tmp_path,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert after.returncode == 0 and "fabops: debug: local: " in after.stderr, after.stderr


def test_debug_is_this_command_lines_not_an_earlier_runs(capsys):
    """--debug is read from each command line: a program run again in the
    same process (tests, an embedding program) without it shows no
    traceback and no command, whatever an earlier run asked for."""
    from fabops.tasks._base import debug_enabled
    from fabops.tasks.program import FabopsProgram

    for argv, expected in ((["fabops", "--debug", "--version"], True), (["fabops", "--version"], False)):
        program = FabopsProgram(namespace=ns, version="x", name="fabops", binary="fabops")
        with pytest.raises(SystemExit):
            program.run(argv)
        assert debug_enabled() is expected or os.environ.get("FABOPS_DEBUG")
    capsys.readouterr()
    # and the commands: shown for the run that asks, not for the next one
    local = ["ping", "-H", "local", "-i", str(ROOT / "hosts.yml")]
    for argv, shown in ((["fabops", "--debug", *local], True), (["fabops", *local], False)):
        FabopsProgram(namespace=ns, version="x", name="fabops", binary="fabops").run(argv, exit=False)
        err = capsys.readouterr().err
        assert ("fabops: debug: local: " in err) is shown or os.environ.get("FABOPS_DEBUG"), err


@pytest.mark.parametrize("program", ["fabops", "inv"])
def test_a_task_without_its_own_h_beside_one_with_it_is_refused(program, tmp_path):
    """`fabops ping -H local status`: -H is each task's own, so `status`
    would have run on the default host (production in the README's
    inventory) right after a task aimed at `local`. Refused before any task
    runs; one -H before the tasks (fabops), or -H on each, is fine."""
    inv = ["-i", str(ROOT / "hosts.yml")]
    cmd = [INV] if program == "inv" else [sys.executable, "-m", "fabops.cli"]
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    r = subprocess.run(cmd + ["ping", "-H", "local", *inv, "status", *inv], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 64 and r.stdout == "", r.stdout + r.stderr
    assert "status has no -H and would run on the default host, while ping names -H local" in r.stderr, r.stderr
    r = subprocess.run(cmd + ["ping", "-H", "local", *inv, "history", "-H", "local", *inv], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    if program == "fabops":
        r = subprocess.run(cmd + ["-H", "local", "ping", *inv, "history", *inv], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("argv", [
    ["monitor", "-i", "x.yml", "--json"],
    ["deploy", "-H", "a,b", "--ref", "v1", "--no-watch"],
    ["logs", "-s", "deploy", "-n", "5"],  # a value that names another task
    ["hosts", "status", "-H", "web"],  # two tasks
    ["local_update", "--run-id", "x"],  # the underscore alias
    ["monitor", "--no-such-flag"],
    ["no-such-task"],
    ["--help=deploy"], ["-hdeploy"], ["-H", "local", "--help=ping"],  # the name glued to the flag (review)
])
def test_the_parser_given_only_the_named_tasks_parses_as_with_every_task(argv):
    """_make_parser hands Invoke's parser the contexts of the tasks the
    command line names (it deep-copies each one it gets): what comes out is
    what the whole tree gives, errors included; completion still sees every
    task."""
    from invoke import Program
    from invoke.exceptions import ParseError

    from fabops import __version__
    from fabops.tasks.program import FabopsProgram

    def parsed(trim):
        p = FabopsProgram(namespace=ns, version=__version__, name="fabops", binary="fabops")
        p.create_config()
        p.parse_core(["fabops"] + argv)
        p.parse_collection()
        parser = p._make_parser() if trim else Program._make_parser(p)
        if isinstance(p.args.help.value, str):  # `--help NAME`: its context is there to print its help
            assert p.args.help.value in parser.contexts
        try:
            result = parser.parse_argv(p.core.unparsed)
        except ParseError as exc:
            return "error", str(exc), None
        return [(c.name, {k: a.value for k, a in c.args.items()}) for c in result], result.unparsed, \
            len(parser.contexts)

    trimmed, whole = parsed(True), parsed(False)
    assert trimmed[:2] == whole[:2]
    if trimmed[0] != "error":
        assert trimmed[2] < whole[2]  # fewer contexts were built and copied

    p = FabopsProgram(namespace=ns, version=__version__, name="fabops", binary="fabops")
    p.create_config()
    p.parse_core(["fabops", "--complete", "--", "fabops"] + argv)
    p.parse_collection()
    assert set(p._make_parser().contexts) == set(Program._make_parser(p).contexts)


@pytest.mark.parametrize("args, said", [
    (["restart", "--service"], "fabops: --service (-s) needs a value; see `fabops restart --help`"),
    (["logs", "-n"], "fabops: -n needs a value; see `fabops logs --help`"),
    (["deploy", "--ref"], "fabops: --ref (-r) needs a value; see `fabops deploy --help`"),
])
def test_a_flag_without_its_value_is_named_as_typed(args, said):
    """Invoke said `Flag <Argument: service (s)> needed value and was not
    given one!` (the trial): the flag as a person types it, exit 64."""
    r = run_cli(*args)
    assert r.returncode == 64 and r.stderr.strip() == said, r.stderr


BYTECODE_TASKS = """import sys

from invoke import task

from fabops.tasks import ns


@task
def bytecode(c):
    print("dont_write_bytecode", sys.dont_write_bytecode)


ns.add_task(bytecode)
"""


@pytest.mark.parametrize("flag, expected", [([], "False"), (["-B"], "True")])
def test_invokes_no_pyc_default_ends_with_the_parse(flag, expected, tmp_path):
    """Invoke's parse turns off Python's `__pycache__` writing (so that no
    tasks.pyc lands beside tasks.py) for the rest of the process; fabops'
    modules that a command imports only when it runs were then compiled again
    on every command of an editable install. After the parse, `fabops` leaves
    the choice to Python again (`-B` or PYTHONDONTWRITEBYTECODE still turns
    writing off); `inv` keeps Invoke's, for a tasks.py's own modules, and
    writes no cache beside tasks.py or a helper it imports."""
    (tmp_path / "tasks.py").write_text(BYTECODE_TASKS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    probe = ("import sys\nfrom fabops import __version__\nfrom fabops.tasks import ns\n"
             "from fabops.tasks.program import FabopsProgram\n"
             "p = FabopsProgram(namespace=ns, version=__version__, name='fabops', binary='fabops')\n"
             "p.create_config()\np.parse_core(['fabops', 'ping'])\n"
             "print('dont_write_bytecode', sys.dont_write_bytecode)\n")
    fabops = subprocess.run([sys.executable, *flag, "-c", probe], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    (tmp_path / "helpers.py").write_text("X = 1\n")
    # a helper tasks.py imports after fabops' tree: Invoke writes no cache for it
    (tmp_path / "tasks.py").write_text(BYTECODE_TASKS.replace("from fabops.tasks import ns\n",
                                                              "from fabops.tasks import ns\nimport helpers  # noqa\n", 1))
    inv = subprocess.run([sys.executable, *flag, "-c", "from invoke.main import program; program.run()",
                          "bytecode"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert fabops.returncode == 0 and fabops.stdout.split() == ["dont_write_bytecode", expected], fabops.stderr
    assert inv.returncode == 0 and inv.stdout.split() == ["dont_write_bytecode", "True"], inv.stdout + inv.stderr
    assert not (tmp_path / "__pycache__").exists()  # tasks.py and its helper: Invoke's choice, kept
