"""examples/workflows/two-stage.yml (issue #28): a push to develop deploys
staging; production is promoted, from main only, behind the production
environment's required reviewers. Checked without a host, as
tests/test_deploy_workflow.py checks deploy.yml: actions pinned, least
privilege, each job's branch and environment, and each `run:` step's exit
codes under GitHub's default shell with a stand-in `inv`."""
from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_deploy_workflow import EVERY_CODE, run_step

pytestmark = pytest.mark.unit

WORKFLOW = ROOT / "examples" / "workflows" / "two-stage.yml"


def _jobs() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def _step(job: str, name: str) -> dict:
    return next(s for s in _jobs()[job]["steps"] if s.get("name") == name)


def test_actions_are_pinned_and_the_jobs_have_least_privilege():
    text = WORKFLOW.read_text()
    uses = [ln.strip() for ln in text.splitlines() if re.match(r"\s*-?\s*uses:", ln)]
    assert uses and all(re.fullmatch(r"-?\s*uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", u) for u in uses)
    workflow = yaml.safe_load(text)
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert (jobs["staging"]["environment"], jobs["promote"]["environment"]) == ("staging", "production")
    assert "refs/heads/develop" in jobs["staging"]["if"] and "push" in jobs["staging"]["if"]
    assert "refs/heads/main" in jobs["promote"]["if"] and "workflow_dispatch" in jobs["promote"]["if"]
    for job in jobs.values():
        assert job["steps"][-1]["if"] == "always()" and "rm -rf" in job["steps"][-1]["run"]


def _inv(tmp_path, code: int):
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    (bin_ / "inv").write_text(f"#!/bin/sh\necho \"inv $*\"\nexit {code}\n")
    (bin_ / "inv").chmod(0o755)
    return {"PATH": f"{bin_}:/usr/bin:/bin"}


@pytest.mark.parametrize("code", EVERY_CODE)
def test_promote_step_fails_the_job_on_all_but_0_and_1(tmp_path, code):
    r = run_step(_step("promote", "Promote"), tmp_path, **_inv(tmp_path, code))
    assert "inv promote --from staging --to production" in r.stdout
    assert r.returncode == (0 if code in (0, 1) else code), r.stdout + r.stderr
    if code == 2:
        assert "::error title=fabops promote::refused: nothing was deployed to production" in r.stdout


@pytest.mark.parametrize("code", EVERY_CODE)
def test_staging_step_fails_the_job_on_all_but_0_and_1(tmp_path, code):
    r = run_step(_step("staging", "Deploy staging"), tmp_path, **_inv(tmp_path, code))
    assert "inv deploy -H staging" in r.stdout
    assert r.returncode == (0 if code in (0, 1) else code), r.stdout + r.stderr
