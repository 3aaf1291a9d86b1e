"""tasks/_invoke.py: the task tree imports invoke without unittest.mock and
asyncio (issue #25, a command's start-up), and nothing else changes."""
import subprocess
import sys

import pytest


def _run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_task_tree_imports_neither_unittest_mock_nor_asyncio():
    out = _run("import sys, fabops.tasks; print(sorted(m for m in ('unittest.mock', 'unittest', 'asyncio') "
               "if m in sys.modules))")
    assert out.strip() == "[]", out


def test_mock_context_and_a_later_import_get_the_real_unittest_mock():
    out = _run("import fabops.tasks, sys\n"
               "from invoke import MockContext, Result\n"
               "c = MockContext(run=Result('hi'))\n"
               "print(c.run('x').stdout, type(c.run).__name__, c.run.call_count)\n"
               "import unittest.mock as m\n"
               "print(isinstance(c.run, m.Mock), callable(m.patch), type(sys.modules['unittest.mock']).__name__)")
    assert out.split("\n")[:2] == ["hi Mock 1", "True True module"], out


def test_nothing_changes_when_unittest_mock_came_first():
    out = _run("import unittest.mock as m, fabops.tasks, invoke.context as ic\nprint(ic.Mock is m.Mock)")
    assert out.strip() == "True", out


@pytest.mark.parametrize("name", ["__path__", "__file__"])
def test_the_stand_in_answers_the_import_system_as_a_plain_module(name):
    from fabops.tasks._invoke import _StandIn

    with pytest.raises(AttributeError):
        getattr(_StandIn("unittest.mock"), name)


def test_invoke_reads_its_config_files_with_the_installed_pyyaml(tmp_path):
    (tmp_path / "invoke.yaml").write_text("run:\n  echo: true\n")
    out = _run("import sys, yaml, fabops.tasks, invoke.util\n"
               "from invoke.config import Config\n"
               f"c = Config(project_location={str(tmp_path)!r}); c.load_project()\n"
               "print(invoke.util.yaml is yaml, c.run.echo, "
               "[m for m in sys.modules if m.startswith('invoke.vendor.yaml.')])")
    assert out.strip() == "True True []", out
