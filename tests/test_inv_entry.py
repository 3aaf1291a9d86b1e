"""`inv` and `fabops` serve fabops' tasks alike (#24): help and completion
list no Invoke core flag that fabops refuses (exit 64: --dry, --echo,
--prompt-for-sudo-password, --write-pyc, ...), and --debug means fabops'
commands. One limit is Invoke's and documented (docs/tasks.md): a bare
`inv --help` and the first lines of `inv --debug` come from Invoke before
it imports any tasks.py, so they are Invoke's own; serving them would take
code run at every interpreter start (a .pth hook), which fabops does not
install. Each check runs the real programs, piped, in a directory holding
the README's one-line tasks.py; the controls are a tasks.py of plain Invoke
tasks and a directory without one, which keep Invoke's behaviour."""
import subprocess
import sys

import pytest

from fabops.tasks.program import REFUSED_CORE
from tests.conftest import ROOT
from tests.test_cli import INV
from tests.test_piped_output import too_long, trailing

PROGRAMS = {"inv": [INV], "fabops": [sys.executable, "-m", "fabops.cli"]}
HOSTS = str(ROOT / "hosts.yml")
PLAIN_TASKS = "from invoke import task\n\n\n@task\ndef hi(c):\n    print('hi')\n"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "tasks.py").write_text("from fabops.tasks import ns  # noqa: F401\n")
    return tmp_path


def run(program, *args, cwd, width="80"):
    import os

    env = dict(os.environ, COLUMNS=width)
    env.pop("FABOPS_DEBUG", None)
    return subprocess.run(PROGRAMS[program] + list(args), cwd=cwd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=120)


def refused_in(text: str):
    """The refused flags a help text lists, by long name or short letter."""
    import re

    from invoke import Program

    core = text.split("Subcommands:")[0]
    names = {a.name: a for a in Program().core_args()}
    found = [f"--{n}" for n in REFUSED_CORE if re.search(rf"--{n}\b", core)]
    for name in REFUSED_CORE:
        found += [f"-{s}" for s in names[name].names if len(s) == 1 and re.search(rf"(^|\s)-{s}\b", core, re.M)]
    return found


@pytest.mark.parametrize("width", ("80", "200"))
def test_fabops_help_lists_no_flag_fabops_refuses(width, project):
    r = run("fabops", "--help", cwd=project, width=width)
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
    assert not refused_in(r.stdout), refused_in(r.stdout)
    assert not trailing(r.stdout) and not too_long(r.stdout, int(width)), r.stdout
    core = " ".join(r.stdout.split("Subcommands:")[0].split())
    assert "--debug Show each command fabops runs" in core, core
    for kept in ("--help", "--list", "--version", "--print-completion-script"):
        assert kept in core


def test_help_keeps_invokes_flags_where_fabops_does_not_serve(tmp_path):
    """The controls: without a tasks.py, or with one of plain Invoke tasks
    (which may use --dry or --echo), `inv --help` is Invoke's own."""
    r = run("inv", "--help", cwd=tmp_path)
    assert r.returncode == 0 and set(refused_in(r.stdout)) >= {"--dry", "--echo", "--prompt-for-sudo-password"}
    (tmp_path / "tasks.py").write_text(PLAIN_TASKS)
    r = run("inv", "--help", cwd=tmp_path)
    assert r.returncode == 0 and set(refused_in(r.stdout)) >= {"--dry", "--write-pyc", "-R", "-e"}, r.stdout
    assert "Enable debug output." in r.stdout


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_completion_offers_no_flag_fabops_refuses(program, project):
    """Tab completion lists the core flags --help lists; a plain Invoke
    tasks.py (the control) keeps all of Invoke's."""
    r = run(program, "--complete", "--", program, "--", cwd=project)
    offered = set(r.stdout.split())
    assert r.returncode == 0 and {"--debug", "--help", "--list", "--version"} <= offered, r.stdout + r.stderr
    assert not offered & {f"--{n}" for n in REFUSED_CORE}, offered
    plain = project / "plain"
    plain.mkdir()
    (plain / "tasks.py").write_text(PLAIN_TASKS)
    if program == "inv":
        r = run("inv", "--complete", "--", "inv", "--", cwd=plain)
        assert {f"--{n}" for n in REFUSED_CORE} <= set(r.stdout.split()), r.stdout


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_fabops_commands_and_not_invokes_parser(program, where, project):
    task = ["ping", "-H", "local", "-i", HOSTS]
    args = ["--debug", *task] if where == "before" else [*task, "--debug"]
    r = run(program, *args, cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("fabops: debug: local: ")], r.stderr
    invokes = [ln for ln in r.stderr.splitlines() if not ln.startswith("fabops: debug: ")]
    # under inv, Invoke's loader logs its lines before tasks.py loads (the
    # documented limit); none from the parser or anything after
    assert len(invokes) <= (3 if program == "inv" and where == "before" else 0), r.stderr
    assert all(ln.startswith(("invoke.program", "invoke.loader")) for ln in invokes), invokes
