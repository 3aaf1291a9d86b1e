"""The docs cannot rot: generated files are current, every hosts.yml key is
documented, and every `inv TASK --flag` shown in the docs exists (each task
shown is run with --help)."""
import re
from pathlib import Path

import pytest

from fabops.docgen import hosts_keys, tasks_md
from fabops.tasks import ns
from tests.conftest import ROOT, run_cli

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def test_tasks_md_is_current():
    assert (ROOT / "docs" / "tasks.md").read_text() == tasks_md(), "run: python -m fabops.docgen"


@pytest.mark.parametrize("section, keys", sorted(hosts_keys().items()))
def test_every_hosts_yml_key_is_documented(section, keys):
    text = (ROOT / "docs" / "hosts.md").read_text()
    for key in keys:
        assert f"`{key}`" in text or f"`{key}:" in text or f".{key}`" in text, f"{section}.{key} is not in docs/hosts.md"


def commands():
    found = {}
    pattern = re.compile(r"\binv ([a-z][a-z-]*)((?: +(?:-[-a-zA-Z]+)(?:[ =][^\s`|]+)?)*)")
    for doc in DOCS:
        for m in pattern.finditer(doc.read_text()):
            task, rest = m.group(1), m.group(2)
            flags = re.findall(r"(?<![\w-])(--?[a-zA-Z][-a-zA-Z]*)", rest)
            found.setdefault(task, set()).update(flags)
    return found


def test_docs_show_real_commands():
    found = commands()
    assert len(found) >= 10
    known = set(ns.task_names)
    for task, flags in found.items():
        assert task in known, f"the docs show `inv {task}`, which does not exist"
        names = {("--" if len(n) > 1 else "-") + n.replace("_", "-") for a in ns[task].get_arguments() for n in a.names}
        for flag in flags:
            assert flag in names, f"the docs show `inv {task} {flag}`, which is not a flag of {task}"


@pytest.mark.parametrize("task", sorted(commands()))
def test_every_task_in_the_docs_runs_with_help(task):
    r = run_cli("--help", task)
    assert r.returncode == 0, r.stderr


def test_the_docs_name_every_hosts_yml_key_that_is_shell_code():
    """#24: the README said every hosts.yml value is `shlex.quote`d, while
    `run:`, `command:` and `setup_command:` are shell code by design. The
    keys are the ones fabops/shell.py's inventory_shell says it marks; the
    README's quoting claim and docs/hosts.md name each as the exception."""
    from fabops.shell import inventory_shell

    keys = re.findall(r"`(\w+):`", inventory_shell.__doc__)
    assert sorted(keys) == ["command", "run", "setup_command"], keys
    readme = " ".join((ROOT / "README.md").read_text().split())
    at = readme.index("shlex.quote")  # the README's one quoting claim, and what follows it
    claim = readme[at - 200: at + 400]
    hosts = " ".join((ROOT / "docs" / "hosts.md").read_text().split())
    shell = hosts[hosts.index("are shell code") - 80: hosts.index("are shell code")]
    for key in keys:
        assert f"`{key}:`" in claim, (key, claim)
        assert f"`{key}:`" in shell, (key, shell)
    assert "except" in claim and "by design" in claim, claim


def test_setup_a_host_walks_through_real_commands_and_a_valid_inventory(tmp_path):
    """docs/setup-a-host.md (#24): its hosts.yml validates as it is written,
    and each `inv` line in its shell blocks is a real task with real flags
    (test_docs_show_real_commands reads every doc; this one says which)."""
    text = (ROOT / "docs" / "setup-a-host.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    path = tmp_path / "hosts.yml"
    path.write_text(block)
    r = run_cli("hosts", "--check", "-i", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for sh in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in sh.splitlines() if ln.startswith("inv ")]
    shown = {ln.split()[1] for ln in lines}
    assert shown >= {"ping", "setup", "deploy", "monitor", "status", "cron"}, shown
    for ln in lines:
        task, *args = ln.split()[1:]
        flags = {a for a in args if a.startswith("-")}
        names = {("--" if len(n) > 1 else "-") + n.replace("_", "-") for a in ns[task].get_arguments() for n in a.names}
        assert flags <= names, f"{ln}: {flags - names}"


def test_docgen_check_says_whether_tasks_md_is_current(tmp_path, monkeypatch, capsys):
    """`python -m fabops.docgen --check` changes nothing and exits 1 when
    docs/tasks.md differs from what the code generates (a hook or CI step)."""
    from fabops import docgen

    real = ROOT / "docs" / "tasks.md"
    monkeypatch.setattr(docgen, "tasks_md", lambda: real.read_text())
    assert docgen.main(["--check"]) == 0
    monkeypatch.setattr(docgen, "tasks_md", lambda: real.read_text() + "drift\n")
    before = real.read_text()
    assert docgen.main(["--check"]) == 1 and real.read_text() == before
    assert "out of date" in capsys.readouterr().err
    assert docgen.main(["--bogus"]) == 64


def test_the_readme_task_table_has_every_task():
    """Trial 2 #6: the README's task table left out `inv backup` (in `inv
    --list`, `fabops --help` and docs/tasks.md); every task has its row."""
    import re

    from fabops.tasks import ns

    rows = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("| `inv ")]
    named = set(re.findall(r"`inv ([\w-]+)", "\n".join(rows)))
    assert sorted(set(ns.task_names) - named) == [], rows
