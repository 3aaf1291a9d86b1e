"""Under GitHub Actions the test run must not write the job's own files
(#30: a CI-style run appended about 50 deploy tables to the job's summary).
tests/conftest.py drops every GITHUB_* variable for the session; a test that
wants one sets it to a file of its own."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

FILE_COMMANDS = ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE")

INNER = textwrap.dedent('''
    import os
    from types import SimpleNamespace

    from fabops.tasks.deploy import _github_summary

    FILE_COMMANDS = {names!r}


    def test_a_deploy_summary_goes_nowhere_by_default():
        _github_summary(SimpleNamespace(results=[]))  # what every CI deploy does at its end
        for name in FILE_COMMANDS:
            if os.environ.get(name):
                with open(os.environ[name], "a") as fh:
                    fh.write("written by a test\\n")


    def test_a_test_that_sets_the_summary_gets_it(tmp_path, monkeypatch):
        own = tmp_path / "summary.md"
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(own))
        _github_summary(SimpleNamespace(results=[]))
        assert own.read_text().startswith("### fabops deploy")
''').format(names=FILE_COMMANDS)


def test_a_ci_run_leaves_the_jobs_files_alone(tmp_path):
    """A pytest run under this conftest, with the job's file-command
    variables set as GitHub sets them: the files stay empty, while the
    writer itself works (the inner second test)."""
    (tmp_path / "test_inner.py").write_text(INNER)
    job = {name: tmp_path / f"job-{name.lower()}" for name in FILE_COMMANDS}
    for path in job.values():
        path.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update({name: str(path) for name, path in job.items()}, GITHUB_ACTIONS="true", CI="true")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr
    written = {name: path.read_text() for name, path in job.items() if path.read_text()}
    assert written == {}, f"the test run wrote the job's files: {written}"
