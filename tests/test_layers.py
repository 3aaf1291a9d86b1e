"""The layers of docs/architecture.md ("Layers"), checked on the source
alone: an AST walk of every import, module-level and inside functions,
without importing anything.

- The library (fabops/*.py) returns data: it never imports the task layer
  (fabops/tasks/) or rich. fabops/cli.py (the console script),
  fabops/docgen.py (which documents the task tree) and
  fabops/agent/server.py (which runs the console script's program in the
  agent) sit on top and may.
- The host side (fabops/host/) imports the standard library, invoke, yaml,
  its own modules and a few library siblings, nothing else: it runs under
  cron on the host's Python 3.9.
- No import cycle. A package's __init__ importing its own submodules is the
  package pattern, not a cycle; every other edge counts, including the
  parent package that importing a submodule runs first."""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "fabops"
TOP = {"fabops.cli", "fabops.docgen", "fabops.agent.server"}
HOST_SIBLINGS = {"fabops", "fabops.errors", "fabops.fanout", "fabops.inventory", "fabops.notify", "fabops.paths", "fabops.printable", "fabops.records", "fabops.redact", "fabops.shell", "fabops.shortsha",
                 "fabops.target", "fabops.validate"}
THIRD_PARTY_ON_HOST = {"invoke", "yaml"}


def _modules():
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _imports(name: str):
    """(target module or external top-level name, is_internal) for every import in `name`."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            for alias in node.names:  # `from . import errors` imports a module
                if f"{target}.{alias.name}" in MODULES:
                    yield f"{target}.{alias.name}"


def _internal(target: str):
    """The fabops module an import names (or None for anything else)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target if target.startswith("fabops") else None


def test_the_walk_sees_the_modules():
    assert {"fabops.remote", "fabops.host.pipeline", "fabops.tasks.deploy", "fabops.shell"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if not m.startswith("fabops.tasks") and m not in TOP))
def test_the_library_never_imports_the_task_layer_or_rich(name):
    bad = [t for t in _imports(name) if t.split(".")[0] == "rich" or t.startswith("fabops.tasks")]
    assert not bad, f"{name} imports {bad}: the library returns data; fabops/tasks/ renders"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("fabops.host")))
def test_the_host_side_imports_only_what_the_host_has(name):
    bad = []
    for target in _imports(name):
        top = target.split(".")[0]
        internal = _internal(target)
        if internal is not None:
            if not internal.startswith("fabops.host") and internal not in HOST_SIBLINGS:
                bad.append(target)
        elif top not in sys.stdlib_module_names and top not in THIRD_PARTY_ON_HOST and top != "__future__":
            bad.append(target)
    assert not bad, f"{name} imports {bad} (allowed: the standard library, invoke, yaml, fabops.host, " \
                    f"{', '.join(sorted(HOST_SIBLINGS))})"


def _graph():
    edges = {m: set() for m in MODULES}
    for name in MODULES:
        is_init = MODULES[name].name == "__init__.py"
        for target in _imports(name):
            internal = _internal(target)
            if internal is None or internal == name:
                continue
            if is_init and internal.startswith(name + "."):
                continue  # the package pattern: __init__ gathering its submodules
            edges[name].add(internal)
        parts = name.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a and a.b first
            parent = ".".join(parts[:i])
            if parent in MODULES and parent != name:
                edges[name].add(parent)
    return edges


def _cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_check_can_fail():
    """A library module importing a task module closes a loop through the
    task layer's own imports of the library."""
    edges = _graph()
    edges["fabops.remote"].add("fabops.tasks.deploy")
    assert any("fabops.remote" in c and "fabops.tasks.deploy" in c for c in _cycles(edges))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_internal_import_names_a_module_that_exists(name):
    """`from .. import render` after render.py moved: caught here, not by the
    one task that runs that line."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("fabops")):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target not in MODULES:
                missing.append(target)
                continue
            source = MODULES[target].read_text()
            tree = ast.parse(source)
            defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            defined |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                        if isinstance(t, ast.Name)}
            defined |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree)
                        if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
            defined |= {n.target.id for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)
                        and isinstance(n.target, ast.Name)}
            for alias in node.names:
                if alias.name != "*" and alias.name not in defined and f"{target}.{alias.name}" not in MODULES:
                    missing.append(f"{target}.{alias.name}")
    assert not missing, f"{name} imports what does not exist: {missing}"


# Decide once, then act (docs/architecture.md, "Plans"): what a run does is
# host/plan.py's; a dry run renders that plan, and host/dry_run.runner picks
# which of the two runs (a Pipeline's options cannot ask it to plan; DryRun
# overrides what differs). No other host module may branch on dry_run, not
# even host/update.py, the entry that runs what runner picks (health --fix
# plans with host/health.plan_health).
DRY_RUN_HOMES = {"fabops/host/dry_run.py"}


def dry_run_tests(path: Path):
    """The conditions (if, while, ternary, boolean operands) that read
    `dry_run`, as source text."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        tests = [node.test] if isinstance(node, (ast.If, ast.While, ast.IfExp)) else (
            node.values if isinstance(node, ast.BoolOp) else [])
        for test in tests:
            if any(isinstance(n, ast.Name) and n.id == "dry_run" or isinstance(n, ast.Attribute) and n.attr == "dry_run"
                   for n in ast.walk(test)):
                yield ast.unparse(test)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (PKG / "host").glob("*.py")))
def test_no_host_module_but_the_renderer_branches_on_dry_run(path):
    if path in DRY_RUN_HOMES:
        return
    found = sorted(dry_run_tests(ROOT / path))
    assert not found, f"{path} decides on dry_run: {found} (host/plan.py decides)"


def test_the_dry_run_rule_can_fail(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f(opts):\n    if opts.dry_run:\n        return 1\n    return 2 if dry_run else 3\n")
    assert sorted(dry_run_tests(bad)) == ["dry_run", "opts.dry_run"]


# Small functions a reader can hold at once (#23): none in the package runs
# past 60 lines, docstring and comments included; a long one is split into
# named parts (plan's decisions, the watch's _Watch, monitor's sections).
LONGEST = 60


def long_functions(path: Path):
    """(name, lines) of every function in the file longer than LONGEST."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > LONGEST:
                yield node.name, length


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")))
def test_no_function_runs_past_60_lines(path):
    found = sorted(long_functions(ROOT / path))
    assert not found, f"{path}: {found} run past {LONGEST} lines: split them into named parts"


def test_the_length_rule_can_fail(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n" + "    x = 1\n" * LONGEST + "\n\ndef g():\n    return 1\n")
    assert list(long_functions(bad)) == [("f", LONGEST + 1)]
