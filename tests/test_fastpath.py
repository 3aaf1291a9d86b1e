"""The cron fast path (fabops/host/fastpath.py, docs/architecture.md, "The
cron fast path"): cron's `local-update` and `health` lines run without
Invoke, importing only the modules listed here, and say exactly what the
full program says, with the same exit code; anything else goes to the
full program."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fabops import cron, errors, inventory
from fabops.host import fastpath
from fabops.host.localrun import CommandTimedOut, LocalContext
from fabops.shortsha import short_sha
from tests.conftest import ROOT, check_json_output, require

# Runs fabops' console script as cron does (`fabops ARGS`, main() reading
# sys.argv) and, at exit, writes which modules were loaded before fabops
# and after it.
DRIVER = """
import atexit, json, sys
BEFORE, OUT = set(sys.modules), sys.argv[1]

def said():
    with open(OUT, "w") as fh:
        json.dump({"before": sorted(BEFORE), "after": sorted(sys.modules)}, fh)

atexit.register(said)
sys.argv = ["fabops", *sys.argv[2:]]
from fabops.cli import main
main()
"""

# What cron's two lines may import, beyond what the interpreter had loaded
# before fabops: fabops' own modules by name, yaml (its C parser, for a
# host.yml without its JSON copy; HostPaths.host_json) and these standard
# library packages, on Python 3.9 to 3.12. Invoke (and with it unittest.mock
# and asyncio), fabric, paramiko, rich, concurrent.futures are not among them,
# nor tempfile (with shutil and random: host/files.new_temp), nor hashlib
# (OpenSSL's load; host/files and host/verify import it where they hash).
BOTH = {
    "fabops", "fabops.cli", "fabops.errors", "fabops.inventory", "fabops.paths", "fabops.printable", "fabops.shell",
    "fabops.target", "fabops.validate", "fabops.host", "fabops.host.fastpath", "fabops.host.files", "fabops.host.git",
    "fabops.host.httpcheck", "fabops.host.localrun", "fabops.host.lock", "fabops.host.plan", "fabops.host.readiness", "fabops.host.listeners",
    "fabops.host.prom", "fabops.host.record", "fabops.host.report", "fabops.host.services", "fabops.host.state", "fabops.host.store", "fabops.host.verify", "fabops.host.would",
    "fabops.shortsha", "fabops.records", "fabops.host.monitorfacts",
}
FABOPS_MODULES = {
    "local-update": BOTH | {"fabops.host.dry_run", "fabops.host.events", "fabops.host.metrics", "fabops.host.pipeline",
                            "fabops.host.preflight", "fabops.host.queue", "fabops.host.update"},
    "health": BOTH | {"fabops.notify", "fabops.host.health"},
}
OTHERS = {"yaml", "_yaml", "cython_runtime"}  # libyaml's extension (and Cython's _cython_<version> modules)
STDLIB = {
    "__future__", "_ast", "_bisect", "_bootlocale", "atexit", "_bz2", "_compression", "_datetime", "_json",
    "_locale", "_lzma", "_opcode", "_posixsubprocess", "_socket", "_sre", "_string", "_strptime",
    "_struct", "_typing", "_weakrefset", "array", "ast", "base64", "binascii", "bisect", "bz2", "calendar",
    "collections", "contextlib", "copy", "copyreg", "dataclasses", "datetime", "dis", "encodings", "enum", "errno",
    "fcntl", "fnmatch", "functools", "grp", "heapq", "importlib", "inspect", "ipaddress", "itertools",
    "json", "keyword", "linecache", "locale", "lzma",
    "math", "opcode", "operator", "pwd", "re", "reprlib", "select", "selectors", "shlex",
    "signal", "socket", "sre_compile", "sre_constants", "sre_parse", "string", "stringprep", "struct",
    "subprocess", "textwrap", "threading", "token", "tokenize", "traceback", "types", "typing",
    "unicodedata", "urllib", "warnings", "weakref", "zlib",
}
NEVER = {"invoke", "unittest", "asyncio", "fabric", "paramiko", "rich", "cryptography", "concurrent"}


def run_fabops(args, tmp_path, env=None, columns="80"):
    """`fabops ARGS` (the console script, as cron's line runs it):
    (CompletedProcess, modules loaded by fabops)."""
    out = tmp_path / f"modules-{os.getpid()}-{len(list(tmp_path.iterdir()))}.json"
    full = {k: v for k, v in os.environ.items() if k not in ("FABOPS_FASTPATH", "FABOPS_DEBUG", "COLUMNS")}
    full.update(COLUMNS=columns, **(env or {}))
    r = subprocess.run([sys.executable, "-c", DRIVER, str(out), *args], capture_output=True, text=True, env=full,
                       cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL)
    check_json_output(args, r)
    seen = json.loads(out.read_text())
    return r, set(seen["after"]) - set(seen["before"])


def cron_args(task: str, inventory: Path):
    """The fabops arguments of cron's line for `task` (fabops/cron.py), splay 0."""
    # backup's line comes from backup.schedule, not JOBS (cron.render_block)
    args = ["backup"] if task == "backup" else next(a for _, a in cron.JOBS if a[0] == task)
    extra = ["--splay", "0"] if task in ("local-update", "backup") else []  # job_line adds --splay N
    return [*args, *extra, "-i", str(inventory)]


@pytest.fixture
def host(sandbox):
    """The sandbox deployed, its host.yml where setup puts it (fabops' home):
    what cron's lines read."""
    sandbox.home.mkdir(parents=True, exist_ok=True)
    inventory = sandbox.home / "host.yml"
    inventory.write_text(sandbox.inventory.read_text())
    sandbox.inventory = inventory
    rc, data = sandbox.result()
    assert rc == 0 and data["result"] == "deployed", data
    return sandbox


# ------------------------------------------------------------ which modules

@pytest.mark.parametrize("task", ["local-update", "health"])
def test_cron_lines_import_only_the_allow_list(host, tmp_path, task):
    """Cron's own line, on a deployed host with nothing to do: exit 0, no
    output, and nothing imported beyond the list, twice (the first
    local-update writes host.yml's JSON copy, the second reads it)."""
    for _ in range(2):
        r, loaded = run_fabops(cron_args(task, host.inventory), tmp_path)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r
        assert not beyond_the_list(task, loaded)
    assert Path(host.home / "host.json").exists()


def beyond_the_list(task: str, loaded) -> list:
    """What `task`'s cron line imported (`loaded`: the modules it added)
    that the allow-list does not name; also fails when the work did not run
    in that process (tests/test_journey.py runs it on the booted hosts)."""
    tops = {m.split(".")[0] for m in loaded}
    assert not tops & NEVER, f"the cron path imported {sorted(tops & NEVER)}"
    # the work really ran in that process
    assert {"local-update": "fabops.host.pipeline", "health": "fabops.host.health"}[task] in loaded
    return unlisted(task, loaded)


def unlisted(task: str, loaded) -> list:
    """What of `loaded` the allow-list does not name (fabops' modules, then
    other top-level modules)."""
    tops = {m.split(".")[0] for m in loaded}
    ours = {m for m in loaded if m.split(".")[0] == "fabops"}
    others = {t for t in tops if t != "fabops" and not t.startswith("_cython_")} - OTHERS - STDLIB
    return sorted(ours - FABOPS_MODULES[task]) + sorted(others)


def invoke_imports() -> set:
    """The top-level modules importing Invoke adds, imported as fabops
    imports it (fabops/tasks/_invoke.py's load, run alone: without
    unittest.mock and asyncio, since 143a2f3)."""
    code = ("import importlib.util, json, sys\n"
            "spec = importlib.util.spec_from_file_location('_invoke', sys.argv[1])\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(mod)\n"
            "before = set(sys.modules)\n"
            "mod.load()\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT / "fabops" / "tasks" / "_invoke.py")],
                       capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(r.stdout))


def test_the_list_catches_invoke(host, tmp_path):
    """Negative control: the full program (FABOPS_FASTPATH=0) on the same
    line imports Invoke, and with it modules that Invoke really imports
    and the allow-list does not name (not only `invoke`, which NEVER names
    too): the list alone would catch it."""
    r, loaded = run_fabops(cron_args("local-update", host.inventory), tmp_path, env={"FABOPS_FASTPATH": "0"})
    assert r.returncode == 0, r
    tops = {m.split(".")[0] for m in loaded}
    assert "invoke" in tops, sorted(tops)
    caught = set(unlisted("local-update", loaded)) & (invoke_imports() - {"invoke"})
    assert caught, (sorted(tops), sorted(invoke_imports()))


def test_cron_lines_parse_as_the_fast_path_reads_them(host):
    """Every crontab line fabops writes for these tasks takes the fast
    path (a flag cron.py adds that fastpath.py does not read would send
    every poll back to the full program, silently)."""
    from fabops import inventory

    h = inventory.load(str(host.inventory)).select(None)[0]
    for _, args in [*cron.JOBS, ("backup", ["backup"])]:
        if args[0] not in fastpath.TASKS:
            continue
        line = cron.job_line(h, "*/5 * * * *", args, splay=30)
        words = shlex.split(line.split(" ", 5)[5])
        start = next(i for i, w in enumerate(words) if w.endswith("/bin/fabops")) + 1
        words = words[start:words.index(">>")]
        assert fastpath.parse(words) is not None, line


# ------------------------------------------------------------ same output

NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d{4})?"), "<time>"),
    (re.compile(r'"(duration|seconds)": [0-9.]+'), r'"\1": <n>'),
    (re.compile(r'"run_id": "[^"]+"'), '"run_id": "<id>"'),
    (re.compile(r'"pid": \d+'), '"pid": <pid>'),
    (re.compile(r"\(\d+\.\d\ds\)"), "(<n>s)"),
]


def said(r) -> tuple:
    text = [r.stdout, r.stderr]
    for pattern, repl in NORMALISE:
        text = [pattern.sub(repl, t) for t in text]
    return r.returncode, text[0], text[1]


def took_the_fast_path(loaded) -> bool:
    """Whether a run was the fast path's: its commands ran through
    LocalContext, or it loaded no Invoke at all (an error before any
    command). A fast run that wraps a long line loads the task layer (and
    Invoke) for its print_text; the full program never loads LocalContext."""
    return "fabops.host.localrun" in loaded or "invoke" not in {m.split(".")[0] for m in loaded}


def both(args, tmp_path, columns="80", before=lambda: None, fast_if=took_the_fast_path):
    """The fast path's run and the full program's, each from the state
    `before()` leaves: (what each said), checking which path each took."""
    before()
    fast, loaded = run_fabops(args, tmp_path, columns=columns)
    assert fast_if(loaded), f"{args}: the fast path was not taken"
    before()
    full, loaded = run_fabops(args, tmp_path, env={"FABOPS_FASTPATH": "0"}, columns=columns)
    assert not fast_if(loaded)
    return said(fast), said(full)


@pytest.mark.parametrize("args", [
    ["local-update"], ["local-update", "--json"], ["local-update", "-v"], ["local-update", "--trigger=manual", "-j"],
    ["health"], ["health", "--json"], ["health", "--fix", "--quiet"], ["health", "-q", "-H", "local"],
])
def test_both_paths_say_the_same_on_a_healthy_host(host, tmp_path, args):
    fast, full = both([*args, "-i", str(host.inventory)], tmp_path)
    assert fast == full
    assert fast[0] == 0


def test_the_backup_line_runs_the_hosts_backup_without_invoke_or_paramiko(host, tmp_path):
    """Issue #26: cron's backup line (backup.schedule) runs the host's own
    run in its process, recorded as every run is: one history record and
    one update-log line (no repository here: exit 0 with its warning)."""
    r, loaded = run_fabops(cron_args("backup", host.inventory), tmp_path)
    assert r.returncode == 0 and r.stderr == "", r
    tops = {m.split(".")[0] for m in loaded}
    # a daily line: its lines longer than the width are wrapped by the task
    # layer, as the full program wraps them (so Invoke may load), but the
    # host never loads an SSH stack to back itself up
    assert not tops & {"fabric", "paramiko", "cryptography"}, sorted(tops)
    assert "fabops.host.backup" in loaded and "fabops.maintenance.backup" not in loaded, sorted(loaded)
    assert "[local] snapshot " in r.stdout and "items ok" in r.stdout and "warning: no off-host copy" in r.stdout
    last = json.loads((host.home / "history.jsonl").read_text().splitlines()[-1])
    assert (last["trigger"], last["result"], last["exit_code"]) == ("backup", "backed_up", 0), last
    assert r.stdout.split("snapshot ", 1)[1].startswith(last["run_id"]) and last["to"] == host.state["deployed"]
    assert last["message"].endswith(" items ok, on this host only"), last
    from fabops.host.record import update_log_path

    h = inventory.load(str(host.inventory)).select(None)[0]
    log = Path(update_log_path(h, h.paths)).read_text()
    # the one line format of every run (host/record.log_line): the commit a backup leaves as it is
    assert "[backup " in log and f"BACKED_UP at {short_sha(last['to'])} in " in log.splitlines()[-1], log[-500:]


BACKUP_NORMALISE = [(re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}"), "<run>"), (re.compile(r"\d+\.\d\d s\b"), "<n> s"),
                    (re.compile(r'"(ts|started|ended|age|duration)": [0-9.e+]+'), r'"\1": <n>'),
                    (re.compile(r'"sha256": "[0-9a-f]+"'), '"sha256": <h>'),
                    (re.compile(r'"size": \d+'), '"size": <n>')]


@pytest.mark.parametrize("args", [["backup"], ["backup", "--json"], ["backup", "--splay", "0"]])
def test_both_paths_say_the_same_about_a_backup(host, tmp_path, args):
    # the full program runs the host's backup through maintenance/backup (a
    # process of its own); the fast path runs it in its own
    import shutil

    kept = {name: (host.home / name).read_bytes() for name in ("history.jsonl", "state.json")}

    def afresh():  # each run from the same home: no snapshot yet, the same history
        shutil.rmtree(host.home / "backups", ignore_errors=True)
        for name, data in kept.items():
            (host.home / name).write_bytes(data)

    fast, full = both([*args, "-i", str(host.inventory)], tmp_path, before=afresh,
                      fast_if=lambda loaded: "fabops.maintenance.backup" not in loaded)
    for pattern, repl in BACKUP_NORMALISE:
        fast, full = ([fast[0]] + [pattern.sub(repl, t) for t in fast[1:]],
                      [full[0]] + [pattern.sub(repl, t) for t in full[1:]])
    assert fast[1].splitlines() == full[1].splitlines() and fast == full and fast[0] == 0


@pytest.mark.parametrize("args,code", [
    (["health"], errors.FAILED), (["health", "--json"], errors.FAILED), (["health", "--fix", "--quiet"], errors.WARNING),
    (["health", "--fix", "--json"], errors.WARNING),
])
@pytest.mark.parametrize("columns", ["200", "30"])  # 30: long lines wrap, through the task layer's own wrap
def test_both_paths_say_the_same_about_a_stopped_service(host, tmp_path, args, code, columns):
    fast, full = both([*args, "-i", str(host.inventory)], tmp_path, columns=columns, before=host.stop)
    assert fast == full
    assert fast[0] == code
    if columns == "30" and "--json" not in args:
        assert max(len(line) for line in fast[1].splitlines()) <= 30, fast[1]


def test_both_paths_say_the_same_when_the_fetch_fails(host, tmp_path):
    from tests.harness.sandbox import git

    url = git("remote", "get-url", "origin", cwd=host.app)
    git("remote", "set-url", "origin", str(tmp_path / "gone.git"), cwd=host.app)
    try:
        for args in (["local-update"], ["local-update", "--json"]):
            fast, full = both([*args, "-i", str(host.inventory)], tmp_path)
            assert fast == full
            assert fast[0] not in (errors.OK, errors.WARNING), fast
    finally:
        git("remote", "set-url", "origin", url, cwd=host.app)


@pytest.mark.parametrize("args", [
    ["local-update", "-i", "no-such.yml"], ["local-update", "-i", "no-such.yml", "--json"],
    ["health", "-i", "no-such.yml"], ["health", "-i", "no-such.yml", "-j"],
])
def test_both_paths_say_the_same_about_a_missing_inventory(tmp_path, args):
    fast, full = both(args, tmp_path)
    assert fast == full
    assert fast[0] == errors.CONFIG


@pytest.mark.parametrize("args", [["local-update", "-H", "nowhere"], ["health", "-H", "nowhere", "--json"]])
def test_both_paths_say_the_same_about_an_unknown_host(host, tmp_path, args):
    fast, full = both([*args, "-i", str(host.inventory)], tmp_path)
    assert fast == full
    assert fast[0] == errors.USAGE


def test_a_changed_host_yml_is_read_again_not_its_old_copy(host, tmp_path):
    """The JSON copy holds the text it was made from: an edit to host.yml
    (a deploy's --install-config, a person) is read at once."""
    r, _ = run_fabops(cron_args("local-update", host.inventory), tmp_path)
    assert r.returncode == 0 and (host.home / "host.json").exists()
    host.inventory.write_text(host.inventory.read_text().replace("hosts:\n  local:", "hosts:\n  renamed:"))
    r, _ = run_fabops(["health", "-H", "renamed", "-i", str(host.inventory)], tmp_path)
    assert (r.returncode, r.stdout) == (0, "renamed: OK: all services healthy\n"), r
    r, _ = run_fabops(["health", "-H", "local", "-i", str(host.inventory)], tmp_path)
    assert r.returncode == errors.USAGE and "unknown host" in r.stderr, r


def test_a_host_yml_outside_its_home_gets_no_copy(host, tmp_path):
    """`local-update -i ./host.yml` from the app's checkout: the file is
    named host.yml but its host's home is elsewhere, so no host.json is
    written beside it (an untracked file the next deploy warns about);
    the home's own host.yml still gets its copy."""
    elsewhere = host.app / "host.yml"
    elsewhere.write_text(host.inventory.read_text())
    try:
        r, loaded = run_fabops(cron_args("local-update", elsewhere), tmp_path)
        assert r.returncode == 0 and took_the_fast_path(loaded), r
        assert not (host.app / "host.json").exists()
        r, _ = run_fabops(cron_args("local-update", host.inventory), tmp_path)
        assert r.returncode == 0 and (host.home / "host.json").exists(), r
    finally:
        for name in ("host.yml", "host.json"):
            (host.app / name).unlink(missing_ok=True)


@pytest.mark.parametrize("fast", [True, False])
def test_cron_logs_a_result_as_one_line_a_manual_run_wraps_it(host, tmp_path, fast):
    """Cron appends local-update's stdout to <home>/cron.log: there each
    entry is one line, whatever the width (a success was wrapped at the
    width with a hanging indent while a failure, on stderr, stayed whole).
    A person's run in a pipe still wraps at the width. Both paths."""
    env = {} if fast else {"FABOPS_FASTPATH": "0"}
    args = ["local-update", "-v", "-i", str(host.inventory)]
    cron_run, loaded = run_fabops([*args, "--trigger", "cron"], tmp_path, env=env, columns="40")
    assert took_the_fast_path(loaded) == fast
    manual, _ = run_fabops([*args, "--trigger", "manual"], tmp_path, env=env, columns="40")
    assert cron_run.returncode == manual.returncode == 0, (cron_run, manual)
    logged = cron_run.stdout.splitlines()
    result = [line for line in logged if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert len(result) == 1 and re.fullmatch(r"\S+ local: noop: up to date at \w+", result[0]), logged
    assert len(result[0]) > 40 and all(line.startswith("  ") for line in logged if line != result[0]), logged
    assert len(logged) == 2, logged  # the fetch step's line and the result, each whole
    assert max(len(line) for line in manual.stdout.splitlines()) <= 40, manual.stdout
    assert len(manual.stdout.splitlines()) > len(logged), manual.stdout


# ------------------------------------------------------------ the full program's part

@pytest.mark.parametrize("args", [
    ["local-update", "--help"], ["health", "--help"], ["local-update", "--dry-run"], ["health", "--fix", "--timeout", "5"],
    ["local-update", "--no-such-flag"], ["local-update", "-i"], ["local-update", "-i", "x", "-i", "y"],
    ["local-update", "--splay", "soon"], ["local-update", "--json=yes"], ["-H", "local", "health"],
    ["--complete", "--", "fabops", "local-up"], ["health", "extra"], ["status"], [],
])
def test_what_the_fast_path_leaves_to_the_full_program(args):
    assert fastpath.parse(args) is None


@pytest.mark.parametrize("args,expected", [
    (["local-update", "--trigger", "cron", "--splay", "30", "-i", "h.yml"],
     ("local-update", {"trigger": "cron", "splay": 30.0, "inventory": "h.yml"})),
    (["local-update", "--splay=2m", "--inventory=h.yml", "-v"],
     ("local-update", {"splay": 120.0, "inventory": "h.yml", "verbose": True})),
    (["health", "--fix", "--quiet", "-i", "h.yml"], ("health", {"fix": True, "quiet": True, "inventory": "h.yml"})),
    (["health", "--fix", "--trigger", "cron"], ("health", {"fix": True, "trigger": "cron"})),
    (["health", "-H", "a,b", "-j"], ("health", {"hosts": "a,b", "json": True})),
])
def test_what_the_fast_path_reads(args, expected):
    assert fastpath.parse(args) == expected


@pytest.mark.parametrize("task", ["local-update", "health"])
def test_help_for_the_cron_tasks_still_works(tmp_path, task):
    r, loaded = run_fabops([task, "--help"], tmp_path)
    assert r.returncode == 0 and f"Usage: fabops [--core-opts] {task}" in r.stdout, r
    assert "invoke" in {m.split(".")[0] for m in loaded}


def test_debug_takes_the_full_program(host, tmp_path):
    """FABOPS_DEBUG (like --debug) shows each command: the full program's.
    (local-update: health of a process service runs no command on this
    machine, it reads the pidfiles itself: ServiceManager._process_status.)"""
    r, loaded = run_fabops(["local-update", "-i", str(host.inventory)], tmp_path, env={"FABOPS_DEBUG": "1"})
    assert r.returncode == 0 and "fabops: debug: local:" in r.stderr, r
    assert "invoke" in {m.split(".")[0] for m in loaded}


def test_health_of_an_ssh_host_takes_the_full_program(tmp_path):
    """health reaches hosts over SSH through the full program; the fast path
    serves `connection: local` only (here: an unreachable address, exit 3)."""
    inv = tmp_path / "hosts.yml"
    inv.write_text("hosts:\n  far:\n    address: 127.0.0.1\n    port: 1\n    app: {path: ~/app}\n"
                   "    services: [{name: bot, command: 'true'}]\n")
    r, loaded = run_fabops(["health", "--connect-timeout", "2", "-i", str(inv)], tmp_path)
    assert "invoke" in {m.split(".")[0] for m in loaded}
    r2, loaded = run_fabops(["health", "-i", str(inv)], tmp_path)
    assert "invoke" in {m.split(".")[0] for m in loaded}  # read by the fast path, then handed over
    assert r2.returncode == errors.UNREACHABLE, r2


# ------------------------------------------------------------ commands without Invoke

def test_local_context_runs_as_invokes_local_runner(tmp_path):
    """The same command through LocalContext and through Invoke's Context
    (connection.local_context): the same output, exit and shell (bash)."""
    from fabops.connection import local_context
    from fabops.inventory import loads

    require(os.path.exists("/bin/bash"), "Invoke's shell is /bin/bash")
    host = loads(f"hosts:\n  h: {{connection: local, app: {{path: {tmp_path}}}, env: {{FROM_HOST: yes-1}}}}\n",
                 "x.yml").hosts["h"]
    command = "printf 'out:%s:%s\\n' \"$FROM_HOST\" \"$CALL\"; [[ -n $BASH_VERSION ]] && echo bash >&2; exit 3"
    for env in (None, {"CALL": "call"}):
        ours = LocalContext(host.env).run(command, hide=True, warn=True, in_stream=False, env=env)
        kwargs = {"env": env} if env is not None else {}
        theirs = local_context(host).run(command, hide=True, warn=True, in_stream=False, **kwargs)
        assert (ours.stdout, ours.stderr, ours.exited, ours.ok) == (theirs.stdout, theirs.stderr, theirs.exited, theirs.ok)
    assert ours.stdout == "out::call\n" and ours.stderr == "bash\n" and ours.exited == 3


def test_local_context_through_a_target(tmp_path):
    """stdin text reaches the command, then end of file; a command without
    stdin reads end of file at once; a failure is CommandFailed."""
    from fabops.errors import CommandFailed
    from fabops.shell import raw
    from fabops.target import Target

    t = Target(LocalContext())
    assert t.output(raw("cat"), stdin="secret\n" * 20000) == "secret\n" * 20000
    assert t.output(raw("cat; echo done")) == "done\n"
    with pytest.raises(CommandFailed, match="a step failed: no"):
        t.run(raw("echo no >&2; exit 1"), "a step")


def test_a_command_past_its_timeout_is_killed_and_reported_as_invokes_is():
    from fabops.fanout import map_failure

    with pytest.raises(CommandTimedOut) as caught:
        LocalContext().run("echo started; exec sleep 30", timeout=0.3)
    assert caught.value.result.stdout == "started\n"
    mapped = map_failure(caught.value, "h")
    assert mapped is not None and mapped.exit_code == errors.UNREACHABLE and "timed out after 0.3 s" in str(mapped)


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether process `pid` has ended (or is a zombie nobody reaped yet),
    polled for up to `within` seconds."""
    import time

    end = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


def _end(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.timeout(40)  # the child sleeps 60 s: returning at all shows the call did not wait for it
def test_a_timeout_ends_a_compound_commands_children_too():
    """`cd app && git fetch`: the shell forks the command, so killing the
    shell alone left the child holding the pipes, and the call waited for
    it (a 0.5 s timeout returned after the child's 4 s)."""
    with pytest.raises(CommandTimedOut) as caught:
        LocalContext().run("cd /tmp && (echo $BASHPID; exec sleep 60); echo done", timeout=0.5)
    pid = int(caught.value.result.stdout.split()[0])
    try:
        assert "done" not in caught.value.result.stdout
        assert _gone(pid), f"the command's child {pid} still runs after its timeout"
    finally:
        _end(pid)


@pytest.mark.timeout(40)
def test_ctrl_c_on_a_cron_line_run_by_hand_stops_its_command(tmp_path):
    """A command runs in a session of its own (so a timeout can end all of
    it), out of reach of the terminal's SIGINT: the KeyboardInterrupt in
    the caller ends it."""
    import signal
    import time

    pidfile = tmp_path / "child.pid"
    script = ("from fabops.host.localrun import LocalContext\n"
              f"LocalContext().run('cd /tmp && (echo $BASHPID > {pidfile}; exec sleep 60); echo done')\n")
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    pid = None
    try:
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert driver.poll() is None, driver.stderr.read()
            time.sleep(0.02)
        pid = int(pidfile.read_text())
        os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C: the terminal's foreground process group
        err = driver.communicate(timeout=30)[1].decode()
        assert "KeyboardInterrupt" in err, err
        assert _gone(pid), f"Ctrl-C left the command's child {pid} running"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if pid is not None:
            _end(pid)


# What the two paths print and decide lives once, in host/report.py: a copy
# in the fast path (or back in a task) could drift from the other path
# without any both-paths comparison above covering that line.
ONCE = {
    "JSON_SCHEMA =": "the --json schema number",
    "def error_text(": "a host's error as a person reads it",
    '"schema": ': "the --json envelope",
    "random.uniform(": "the splay wait",
    '"cron" if splay': "the default trigger",
    "(run with --debug for the traceback)": "an internal error's line",
    "warning: {warning}": "local-update's warning lines",
    ".2f}s)": "local-update -v's step lines",
    "errors.NAMES.get(": "health's Nagios word",
}


LEAVE = """
import atexit, sys
from fabops.host.fastpath import leave
atexit.register(lambda: print("atexit, second"))
atexit.register(lambda: print("atexit, first"))
sys.stdout.write("buffered, not flushed ")
sys.stderr.write("err")
leave(int(sys.argv[1]))
print("never")
"""


@pytest.mark.parametrize("code", [0, 2])
def test_the_fast_exit_runs_atexit_and_flushes_as_an_exit_does(tmp_path, code):
    """fastpath.leave skips only the interpreter's teardown: the atexit
    functions run in their order, stdout and stderr are flushed (to a file,
    as cron's `>> cron.log`), and the exit code is the run's."""
    out = tmp_path / "out"
    with out.open("w") as fh:
        r = subprocess.run([sys.executable, "-c", LEAVE, str(code)], stdout=fh, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, timeout=60)
    assert (r.returncode, out.read_text(), r.stderr) == (code, "buffered, not flushed atexit, first\natexit, second\n",
                                                        "err")


def test_what_both_paths_print_and_decide_lives_in_one_module():
    where = {}
    for path in sorted((ROOT / "fabops").rglob("*.py")):
        text = path.read_text()
        for needle in ONCE:
            if needle in text:
                where.setdefault(needle, []).append(str(path.relative_to(ROOT)))
    shared = {"fabops/host/report.py"}
    tasks = ("fabops/host/fastpath.py", "fabops/tasks/update.py", "fabops/tasks/health.py", "fabops/tasks/_base.py")
    copies = {ONCE[n]: [p for p in paths if p in tasks] for n, paths in where.items() if set(paths) - shared}
    assert not {k: v for k, v in copies.items() if v}, f"copies outside host/report.py: {copies}"
    assert set(where) == set(ONCE), f"not found at all: {set(ONCE) - set(where)}"


def test_report_decisions():
    from types import SimpleNamespace

    from fabops.host import report

    assert report.default_trigger(None, 30) == "cron" and report.default_trigger(None, 0) == "manual"
    assert report.default_trigger("deploy", 30) == "deploy"
    noop = SimpleNamespace(result="noop", message="up to date at abc", warnings=[], exit_code=errors.OK, plan={})
    assert report.update_lines("h", noop, always=False) is None
    text, to_stderr = report.update_lines("h", noop, always=True, plan={"restart": ["bot"]})
    assert text.endswith(" h: noop: up to date at abc\n  restart: bot") and not to_stderr
    assert report.health_code(None, reached=False) == errors.UNREACHABLE
    assert report.error_envelope(errors.UsageError("no")) == {"schema": 1, "code": errors.USAGE, "hosts": {},
                                                              "error": "no"}
