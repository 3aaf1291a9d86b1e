"""A command a message tells a person to run next names the program they ran
(#24, docs/architecture.md "Command line"): `fabops` is the only entry of a
wheel install in an empty directory, where `inv unpin` finds no tasks.py and
fails. Real runs of both programs, directly and through the agent, and a
scan that no module spells a hint with a literal `inv `."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.harness.agent import agent_pid, stop_agent

PROGRAMS = {"inv": [str(Path(sys.executable).parent / "inv")], "fabops": [sys.executable, "-m", "fabops.cli"]}


@pytest.fixture
def project(tmp_path):
    """The README's empty directory: the one-line tasks.py (for `inv`) and
    a `connection: local` inventory."""
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    (tmp_path / "app").mkdir()
    inv = tmp_path / "local.yml"
    inv.write_text(f"hosts:\n  local:\n    connection: local\n    app: {{path: {tmp_path / 'app'}}}\n"
                   f"    home: {tmp_path / 'home'}\n")
    return tmp_path, inv


@pytest.mark.parametrize("through_agent", [False, True], ids=["direct", "agent"])
@pytest.mark.parametrize("program", ["fabops", "inv"])
def test_the_hint_names_the_program_that_ran(program, through_agent, project):
    workdir, inv = project
    env = dict(os.environ, COLUMNS="200", FABOPS_AGENT="1" if through_agent else "0")
    try:
        r = subprocess.run(PROGRAMS[program] + ["restore-env", "-i", str(inv)], cwd=workdir, env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        served = agent_pid(Path(os.environ["XDG_RUNTIME_DIR"]))
    finally:
        if through_agent:
            stop_agent(Path(os.environ["XDG_RUNTIME_DIR"]))
    assert (served is not None) == through_agent, f"agent pid {served}"
    assert r.returncode == 64 and "Traceback" not in r.stderr, r.stderr
    assert f"(see `{program} backup-env -i {inv} -H local --list`)" in r.stderr, r.stderr
    other = {"fabops": "inv", "inv": "fabops"}[program]
    assert f"`{other} " not in r.stderr, r.stderr


# Strings that keep `inv ` on purpose, by a part of each: Invoke's own
# behaviour explained, the usage and the generated docs that name both
# programs, the completion scripts' list of programs, and comments written
# into a host's files (the same text whichever program wrote them: another
# program must not read as a changed crontab or unit).
KEPT = {
    ("fabops/docgen.py", "`inv --version` prints Invoke's version only"),
    ("fabops/docgen.py", "a bare `inv --help` is Invoke's own"),
    ("fabops/tasks/program.py", "(`inv --version` is Invoke's own"),
    ("fabops/tasks/agent.py", "Usage: fabops agent ACTION (or inv agent ACTION)"),
    ("fabops/completion.py", " fabops inv invoke\n"),
    ("fabops/cron.py", "# Managed by fabops (`inv setup`); edits inside this block are replaced."),
    ("fabops/setup.py", "# Managed by fabops: changes here are replaced by `inv setup`."),
}
HINT = re.compile(r"(?<![\w.-])inv [a-z-]+")


def _docstrings(tree) -> set:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def literal_texts(source: str):
    """Each string literal that is not a docstring, an f-string's parts
    joined with `{…}` for what it computes."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    inside = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip | inside:
            yield node.value


def test_the_scan_finds_a_literal_hint():
    """Negative control: the hint this change removed, and one in an f-string."""
    found = list(literal_texts('def f(x):\n    """`inv deploy` in a docstring is kept."""\n'
                               '    return "run `inv setup` first", f"see `inv history -H {x}`"\n'))
    assert [t for t in found if HINT.search(t)] == ["run `inv setup` first", "see `inv history -H {…}`"]


def test_no_module_spells_a_hint_with_inv():
    """A hint's program comes from shell.program() (the host's messages
    name the task alone: it cannot know what the laptop ran). Docstrings and
    comments may say `inv`: docs/tasks.md says both work."""
    found, kept = [], set()
    for path in sorted((ROOT / "fabops").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for text in filter(HINT.search, literal_texts(path.read_text())):
            why = {(r, part) for r, part in KEPT if rel == r and part in text}
            kept |= why
            if not why:
                found.append(f"{rel}: {text!r}")
    assert not found, "\n".join(found)
    assert kept == KEPT, f"allowed, but no longer found: {KEPT - kept}"
