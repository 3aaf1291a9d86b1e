"""Whether this process runs in CI: one rule for every place that asks
(docs/ci.md, "How fabops knows it runs in CI").

Asked by deploy, rollback and promote (the `ci` trigger, deploy's and
promote's lock wait, and the commit CI's settings come from:
docs/security.md), by deploy's live view (plain lines in CI) and by the
agent's client (never in CI). Prompts ask only on a terminal. Those answers used
to come from four spellings of the question (`CI=true` only, `CI=true` or
`1`, any `CI` but an off word, a CI service's own variable), so a job
with `CI=1`, or on Jenkins (which sets no `CI`), was CI for one of them
and a person's terminal for another. Standard library only: the agent's
client imports it."""
from __future__ import annotations

import os
from typing import Mapping, Optional

# what CI services set in their jobs' environment (CI=true is most of them;
# Jenkins, Azure Pipelines and TeamCity set none of it)
CI_MARKS = ("GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD", "BUILDKITE", "CIRCLECI", "TEAMCITY_VERSION",
            "DRONE", "WOODPECKER", "BITBUCKET_BUILD_NUMBER")
# a mark that a person's shell may hold too counts only beside its job's
# own variable: the Jenkins CLI reads JENKINS_URL, so people export it
WITH = {"JENKINS_URL": "BUILD_NUMBER"}
# `CI` set to one of these is a person saying "not CI" (or an empty export)
NOT_CI = ("", "0", "false", "no", "off")


def in_ci(environ: Optional[Mapping[str, str]] = None) -> bool:
    """`CI` set to anything but an off word, or a CI service's own variable."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() not in NOT_CI or any(
        env.get(k) and (k not in WITH or env.get(WITH[k])) for k in CI_MARKS)
