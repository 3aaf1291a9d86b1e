"""Typed commands (docs/architecture.md, "Commands"): every shell command is
built by fabops/shell.py's `sh` from a literal template and typed parts, so a
plain string can reach a shell only quoted.

Two checks. A static walk of fabops' source refuses the old patterns (an
f-string or a concatenation handed to `.run`, quoting by hand inside an
f-string, `sh`/`raw` with a template that is not a literal, a builder not
typed `-> Cmd`). A dynamic walk calls every builder typed `-> Cmd` with a
hostile sentinel in every string it takes (and in every field of the host it
is given) and checks that the sentinel comes out as one intact shell word.
tests/test_injection_ssh.py runs the same builders in a real shell."""
import ast
import dataclasses
import importlib
import inspect
import shlex
from pathlib import Path

import pytest
import yaml

from fabops import inventory
from fabops.shell import Cmd

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in (ROOT / "fabops").rglob("*.py"))
QUOTERS = {"q", "quote_path", "join", "sudo", "shlex.quote"}
# f-strings that quote by hand on purpose, with why
QUOTING_FSTRINGS_ALLOWED = {
    # an error message that shows the user a command to type
    ("fabops/connection.py", "host_key_changed"),
    # the one builder of the commands messages hand a person (`inv deploy … --attach ID`):
    # shell.join quotes each word as a shell reads it; nothing runs it
    ("fabops/deploy.py", "suggest"),
    # its words on the host, which cannot import deploy (test_layers): the take-over
    # command of a restore cut off while putting items back (docs/backups.md)
    ("fabops/host/plan.py", "take_over"),
}


def _name(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _enclosing(tree):
    """node -> the name of the function it is in (or "<module>")."""
    owner = {}
    for fn in _functions(tree):
        for node in ast.walk(fn):
            owner.setdefault(node, fn.name)
    return owner


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_command_is_built_by_hand(source):
    rel = str(source.relative_to(ROOT))
    tree = ast.parse(source.read_text(), rel)
    owner = _enclosing(tree)
    problems = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')} ({owner.get(node, '<module>')})"
        if isinstance(node, ast.Call):
            func = _name(node.func)
            # templates and raw shell are literals of fabops' own source
            if func in ("sh", "raw") and rel != "fabops/shell.py":
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    problems.append(f"{where}: {func}() needs a string literal, not {ast.dump(first)[:60]}")
            # only shell.py makes a Cmd out of text
            if func == "Cmd" and rel != "fabops/shell.py":
                problems.append(f"{where}: Cmd() outside fabops/shell.py declares text safe; use sh()")
            # what runs on a host is a Cmd, never text assembled here
            if func.endswith(".run") and node.args:
                cmd = node.args[0]
                if isinstance(cmd, (ast.JoinedStr, ast.BinOp)) or (
                        isinstance(cmd, ast.Call) and _name(cmd.func).endswith(".format")):
                    problems.append(f"{where}: .run() of a command built by hand; use sh()")
        if isinstance(node, ast.JoinedStr) and rel != "fabops/shell.py":
            quoted = [v for v in node.values if isinstance(v, ast.FormattedValue)
                      and isinstance(v.value, ast.Call) and _name(v.value.func) in QUOTERS]
            if quoted and (rel, owner.get(node, "<module>")) not in QUOTING_FSTRINGS_ALLOWED:
                problems.append(f"{where}: an f-string that quotes by hand builds a command; use sh()")
    for fn in _functions(tree):
        if rel == "fabops/shell.py":
            continue
        if fn.name.endswith(("_cmd", "_script")):
            if _name(fn.returns) != "Cmd":
                problems.append(f"{rel}:{fn.lineno}: builder {fn.name} is not typed -> Cmd")
            for ret in (n for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None):
                if isinstance(ret.value, (ast.JoinedStr, ast.BinOp, ast.Constant)):
                    problems.append(f"{rel}:{ret.lineno}: builder {fn.name} returns text built by hand")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- dynamic walk

# Three payloads, for the three ways a value can escape: spliced bare, or
# breaking out of single or of double quotes around it.
SENTINELS = ["s p$(touch /tmp/fabops-never)`id`;x", "x'$(touch /tmp/fabops-never)'x", 'x"$(touch /tmp/fabops-never)"x']
SENTINEL = SENTINELS[0]


def _hostile_host(SENTINEL=SENTINEL):
    entry = {"address": "h", "app": {"path": "/srv/app"}, "home": "/srv/home",
             "services": [{"name": "bot.service"}, {"name": "p", "manager": "process", "command": "true", "port": 9,
                                                   "check": {"url": "http://127.0.0.1:9/h"}}],
             "cleanup": [{"path": "/tmp/c", "glob": "*.pcm", "older_than": "1d"}], "logs": {"update": "/var/log/u"}}
    host = inventory.loads(yaml.safe_dump({"hosts": {"h1": entry}}), "walk.yml").hosts["h1"]
    svcs = tuple(dataclasses.replace(s, name=s.name + SENTINEL, workdir=SENTINEL) for s in host.services)
    return dataclasses.replace(
        host, app=dataclasses.replace(host.app, path="/srv/" + SENTINEL, remote=SENTINEL, branch=SENTINEL),
        home="/srv/h" + SENTINEL, env_file=SENTINEL, backup_dir="~/" + SENTINEL, services=svcs,
        logs={"update": "/var/log/" + SENTINEL, "health": "/var/log/" + SENTINEL},
        cleanup=(dataclasses.replace(host.cleanup[0], path="/tmp/" + SENTINEL, glob=SENTINEL),),
        env={"X": SENTINEL})


def _argument(name: str, host, SENTINEL=SENTINEL):
    """A value for a builder parameter, by its name: the sentinel wherever a
    string is taken, real objects elsewhere."""
    numbers = {"keep": 3, "n": 5, "port": 3003, "wait": 1.5, "window": 0.5, "grace": 0.2, "older_than": 3600.0,
               "lines": 10, "splay": 30}
    if name in numbers:
        return numbers[name]
    if name == "host":
        return host
    if name in ("svc",):
        return host.services[1]
    if name in ("services",):
        return list(host.services[1:])
    if name in ("units",):
        return [host.services[0].name]
    if name in ("paths", "argv"):
        return ["/srv/" + SENTINEL, SENTINEL]
    if name == "check":
        return dataclasses.replace(host.services[1].check, url="http://127.0.0.1:9/" + SENTINEL,
                                   headers={"X": SENTINEL})
    if name == "info":
        return {"actor": SENTINEL}
    if name == "dry_run":
        return False
    if name == "manager":
        return "dnf"
    return "/srv/" + SENTINEL if name.endswith(("path", "dest", "home")) else SENTINEL


def _builders():
    """Every function in fabops typed `-> Cmd`, outside shell.py itself."""
    found = []
    for source in SOURCES:
        rel = source.relative_to(ROOT)
        if rel.name == "shell.py":
            continue
        module = ".".join(rel.with_suffix("").parts)
        for fn in _functions(ast.parse(source.read_text())):
            if _name(fn.returns) == "Cmd" and not fn.name.startswith("__"):
                found.append((module, fn.name))
    return found


BUILDERS = _builders()


def test_the_walk_finds_the_builders():
    names = {name for _, name in BUILDERS}
    assert len(BUILDERS) >= 35 and {"monitor_script", "backup_env_cmd", "log_command", "start_detached_cmd",
                                    "process_start_cmd", "remote_lock_script"} <= names, sorted(names)


@pytest.fixture(scope="module")
def stub_shell(tmp_path_factory):
    """A shell whose PATH holds only recording stubs for what a payload
    would run (`touch`, `id`); every other external command is "not found".
    HOME is a scratch directory, so a builder's ~/ paths land there."""
    base = tmp_path_factory.mktemp("stubs")
    (base / "bin").mkdir()
    log = base / "injected.log"
    for name in ("touch", "id"):
        stub = base / "bin" / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        stub.chmod(0o755)
    return base, log


@pytest.mark.parametrize("sentinel", SENTINELS, ids=["bare", "single", "double"])
@pytest.mark.parametrize("module, name", BUILDERS, ids=[f"{m}.{n}" for m, n in BUILDERS])
def test_every_builder_keeps_a_hostile_value_data(module, name, sentinel, stub_shell):
    """Run what the builder built, with the sentinel in every string and in
    every field of the host, in a real /bin/sh whose PATH has only
    recording stubs: the payload's `touch` and `id` must never run."""
    import os
    import subprocess

    fn = getattr(importlib.import_module(module), name)
    host = _hostile_host(sentinel)
    params = [p for p in inspect.signature(fn).parameters.values() if p.default is inspect.Parameter.empty
              and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    args = {p.name: _argument(p.name, host, sentinel) for p in params}
    if module == "fabops.logs" and name == "log_command":
        args.update(source="update", service=None, errors_only=True, since=sentinel, follow=False)
    if module == "fabops.checks" and name == "http_check_cmd":
        from fabops.checks import FROM_STDIN

        args.update(feed=FROM_STDIN)  # its checks come on stdin (here /dev/null)
    from fabops.errors import UsageError

    try:
        cmd = fn(**args)
    except UsageError as exc:
        # a builder that checks its run id (paths.check_run_id) refuses the
        # hostile one before any command exists; the host's fields still
        # reach the shell, with a run id that passes
        assert "run_id" in args and "not a run id" in str(exc), exc
        args["run_id"] = "20261206T130834-a26a0a"
        cmd = fn(**args)
    assert isinstance(cmd, Cmd), f"{name} returned {type(cmd).__name__}"
    base, log = stub_shell
    if log.exists():
        log.unlink()
    r = subprocess.run(["/bin/sh", "-c", cmd], cwd=base, capture_output=True, text=True, timeout=20,
                       env={"PATH": str(base / "bin"), "HOME": str(base), "LC_ALL": "C"},
                       stdin=subprocess.DEVNULL)
    injected = log.read_text() if log.exists() else ""
    assert injected == "", f"{name}: the payload ran: {injected}\n{cmd}\n{r.stderr[-500:]}"


def test_negative_control_the_stub_shell_sees_an_unquoted_value(stub_shell):
    """The check above can fail: the sentinel spliced by hand runs its payload."""
    import subprocess

    base, log = stub_shell
    if log.exists():
        log.unlink()
    for sentinel, splice in zip(SENTINELS, ("echo {}", "echo '{}'", 'echo "{}"')):
        subprocess.run(["/bin/sh", "-c", splice.format(sentinel)], cwd=base, capture_output=True, timeout=20,
                       env={"PATH": str(base / "bin"), "HOME": str(base)})
        assert "touch /tmp/fabops-never" in log.read_text(), sentinel
        log.unlink()
