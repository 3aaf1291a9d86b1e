"""One rule for "this runs in CI" (fabops/ci.py, docs/ci.md "Behaviour
under CI"): the trigger, the lock wait, CI's settings commit, the prompts
and the agent all ask it, so a job is CI for all of them or for none."""
import os
import re
from pathlib import Path

import pytest

from fabops.ci import CI_MARKS, in_ci
from tests.conftest import ROOT


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"CI": ""}, False), ({"CI": "false"}, False), ({"CI": "0"}, False), ({"CI": "No"}, False),
    ({"CI": "off"}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "TRUE"}, True),
    ({"CI": "yes"}, True), ({"CI": " true "}, True),
    ({"JENKINS_URL": "http://jenkins:8080/", "BUILD_NUMBER": "12"}, True), ({"TF_BUILD": "True"}, True),
    ({"JENKINS_URL": "http://jenkins:8080/"}, False),  # the Jenkins CLI's, in a person's shell
    ({"CI": "false", "GITHUB_ACTIONS": "true"}, True),  # the service's own word wins over a stray CI=false
    ({"GITHUB_ACTIONS": ""}, False),
])
def test_the_rule(env, expected):
    assert in_ci(env) is expected


def test_nothing_else_reads_ci_from_the_environment():
    """Every `CI` read in fabops' code is fabops/ci.py's: the trigger, the
    wait, the settings commit, the prompts and the agent once had four
    spellings, and a Jenkins job (no `CI`) was CI for one of them only."""
    read = re.compile(r"""((environ|env)\s*(\.get\(|\[)|getenv\()\s*["']CI["']|["']CI["']\s+(not\s+)?in\b""")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "fabops").rglob("*.py")) if p.name != "ci.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if read.search(line)]
    assert found == []
    marks = [m for m in CI_MARKS if re.search(rf"\b{m}\b", (ROOT / "docs" / "ci.md").read_text())]
    assert marks == list(CI_MARKS)  # docs/ci.md names every one


def test_the_agent_and_the_settings_commit_agree(monkeypatch, tmp_path):
    from fabops.agent.where import why_off
    from fabops.deploy import NO_COMMIT, ci_settings_from

    inv = tmp_path / "hosts.yml"
    inv.write_text("hosts: {}\n")
    for name in ("CI", "FABOPS_AGENT", "FABOPS_AGENT_RUN", "SSH_CONNECTION", *CI_MARKS):
        monkeypatch.delenv(name, raising=False)
    for env in ({"CI": "1"}, {"JENKINS_URL": "http://jenkins/", "BUILD_NUMBER": "7"}, {"CI": "yes"}):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            assert why_off(["fabops", "monitor"]) == "CI", env
            assert ci_settings_from(str(inv)) == NO_COMMIT, env
    assert ci_settings_from(str(inv)) is None and why_off(["fabops", "monitor"]) != "CI"
