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
