"""Every ref fabops hands to git comes after `--end-of-options` (or, for
checkout and reset, before a `--`), and every such command still works:
each builder of fabops/host/git.py and fabops/maintenance/reset.py is run
in a real shell against real git repositories (#22).

Why two forms (fabops/host/git.py, END_OF_OPTIONS): before git 2.44,
checkout and reset keep the marker and read it as a path, which
test_checkout_and_reset_refuse_the_marker_on_this_git shows on this
machine's git when it is older than 2.44."""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from invoke import Context

from fabops import inventory
from fabops.host.git import (
    END_OF_OPTIONS, Git, checkout_cmd, describe_cmd, diff_names_cmd, fetch_cmd, fetch_ref_cmd, ls_remote_cmd,
    parse_ls_remote, parse_names, reset_hard_cmd, rev_parse_cmd, rev_parse_each_cmd, show_cmd, tree_has_cmd,
)
from fabops.maintenance.reset import parse_reset_plan, reset_cmd, reset_plan_cmd

IDENTITY = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org",
            "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org"}


def sh(cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """A built command, run by a real shell as the host's would."""
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env={**os.environ, **IDENTITY})
    if check:
        assert r.returncode == 0, f"{cmd}\n{r.stderr}"
    return r


def git_in(repo: Path, *args: str) -> str:
    return sh(shlex.join(["git", "-C", str(repo), *args])).stdout.strip()


def commit(repo: Path, message: str, **files: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git_in(repo, "add", "-A")
    git_in(repo, "commit", "--quiet", "-m", message)
    return git_in(repo, "rev-parse", "HEAD")


class Repos:
    """`origin` (main: c1, c2; feature: c1, c3; annotated tag v1 at c1) and
    `app`, its clone. The app's work tree also holds an untracked
    `origin/main`: a file named like the tracking ref."""

    def __init__(self, root: Path):
        self.origin, self.app = root / "origin", root / "app"
        sh(shlex.join(["git", "init", "--quiet", "-b", "main", str(self.origin)]))
        files = {"README": "one\n", "-n": "a path like an option\n", "--": "a path like the separator\n",
                 "dir/x": "x\n"}
        self.c1 = commit(self.origin, "first", **files)
        git_in(self.origin, "tag", "-a", "-m", "v1", "v1")
        git_in(self.origin, "checkout", "--quiet", "-b", "feature")
        self.c3 = commit(self.origin, "feature work", **{"feature.txt": "f\n"})
        git_in(self.origin, "checkout", "--quiet", "main")
        self.c2 = commit(self.origin, "second: ünïcode", README="two\n")
        sh(shlex.join(["git", "clone", "--quiet", str(self.origin), str(self.app)]))
        (self.app / "origin").mkdir()
        (self.app / "origin" / "main").write_text("not a ref\n")

    def head(self) -> str:
        return git_in(self.app, "rev-parse", "HEAD")


@pytest.fixture
def repos(tmp_path) -> Repos:
    return Repos(tmp_path)


def test_fetch_updates_the_tracking_ref_and_the_dry_run_its_own(repos):
    c4 = commit(repos.origin, "fourth", README="four\n")
    app = str(repos.app)
    sh(fetch_cmd(app, "origin", "main", scratch=True))
    assert git_in(repos.app, "rev-parse", "refs/fabops/dry-run/main") == c4
    git_in(repos.app, "update-ref", "refs/remotes/origin/main", repos.c2)
    sh(fetch_cmd(app, "origin", "main"))
    assert git_in(repos.app, "rev-parse", "refs/remotes/origin/main") == c4


@pytest.mark.parametrize("ref, expect", [
    ("feature", "c3"), ("refs/heads/feature", "c3"), ("v1", "c1"), ("refs/tags/v1", "c1"), ("main", "c2"),
    ("<sha of c3>", "c3"),
])
def test_fetch_ref_then_resolve_through_the_pipelines_git(repos, ref, expect):
    """Git.fetch_ref: fetch_ref_cmd, then rev_parse_cmd of what it fetched."""
    ref = repos.c3 if ref.startswith("<") else ref
    g = Git(Context(), str(repos.app))
    assert g.fetch_ref("origin", ref) == getattr(repos, expect)
    g.scratch = True
    assert g.fetch_ref("origin", ref) == getattr(repos, expect)
    g.scratch = False
    assert g.fetch_ref("origin", "no-such-branch") is None


def test_ls_remote_names_the_remote_branch(repos):
    assert parse_ls_remote(sh(ls_remote_cmd(str(repos.app), "origin", "main")).stdout) == repos.c2
    assert parse_ls_remote(sh(ls_remote_cmd(str(repos.app), "origin", "nope")).stdout) is None


@pytest.mark.parametrize("rev, expect", [
    ("HEAD", "c2"), ("origin/main", "c2"), ("origin/feature", "c3"), ("v1", "c1"), ("<sha>", "c3"),
    ("<short sha>", "c3"),
])
def test_rev_parse_gives_exactly_the_commit(repos, rev, expect):
    rev = {"<sha>": repos.c3, "<short sha>": repos.c3[:10]}.get(rev, rev)
    assert sh(rev_parse_cmd(str(repos.app), rev)).stdout == getattr(repos, expect) + "\n"


def test_rev_parse_of_an_unknown_rev_fails_quietly(repos):
    r = sh(rev_parse_cmd(str(repos.app), "nope"), check=False)
    assert r.returncode != 0 and r.stdout == "" and r.stderr == ""


def test_resolve_each_asks_one_git_and_each_alone_when_one_is_unknown(repos, mocker):
    """Git.resolve_each: the branch's head and HEAD in one rev-parse (the
    cron poll's), even with a file named like the tracking ref in the
    checkout; one unknown rev makes it ask each alone, so the others still
    resolve."""
    g = Git(Context(), str(repos.app))
    spy = mocker.spy(g, "run")
    assert g.resolve_each("origin/main", "HEAD", "v1") == [repos.c2, repos.c2, repos.c1]
    assert spy.call_count == 1
    assert g.resolve_each("HEAD", "nope") == [repos.c2, None]
    assert g.resolve_each("-n") == [None]


def test_diff_show_describe_and_tree_of_a_commit(repos):
    app = str(repos.app)
    assert parse_names(sh(diff_names_cmd(app, repos.c1, repos.c3)).stdout) == ["feature.txt"]
    assert parse_names(sh(diff_names_cmd(app, repos.c1, repos.c2)).stdout) == ["README"]
    assert sh(show_cmd(app, repos.c1, "README")).stdout == "one\n"
    assert sh(show_cmd(app, repos.c1, "-n")).stdout == "a path like an option\n"
    r = subprocess.run(["sh", "-c", describe_cmd(app, repos.c2)], capture_output=True)
    assert r.returncode == 0 and r.stdout.decode("utf-8") == "second: ünïcode\x1fAda\n"
    # paths that look like options and like the separator are paths here
    listed = parse_names(sh(tree_has_cmd(app, repos.c1, ["README", "-n", "--", "dir", "missing"])).stdout)
    assert sorted(listed) == ["--", "-n", "README", "dir/x"]
    assert Git(Context(), app).tracked_in(repos.c3, ["-n", "feature.txt", "dir", "missing"]) == \
        ["-n", "feature.txt", "dir"]


@pytest.mark.parametrize("rev", ["<sha of c3>", "origin/main"])
def test_checkout_and_reset_take_a_commit_or_a_ref_named_like_a_file(repos, rev):
    """`origin/main` is also an untracked path in the work tree: `REV --`
    keeps it a revision."""
    app = str(repos.app)
    rev, sha = (repos.c3, repos.c3) if rev.startswith("<") else (rev, repos.c2)
    sh(checkout_cmd(app, "main", repos.c1))
    sh(checkout_cmd(app, "main", rev))
    assert repos.head() == sha and git_in(repos.app, "branch", "--show-current") == "main"
    (repos.app / "README").write_text("local change\n")
    sh(checkout_cmd(app, "main", repos.c1))
    sh(reset_hard_cmd(app, rev))
    assert repos.head() == sha
    assert (repos.app / "origin" / "main").read_text() == "not a ref\n"  # a path, untouched


def test_maintenance_reset_and_its_plan(repos):
    c4 = commit(repos.origin, "fourth", README="four\n")
    host = inventory.loads(yaml.safe_dump({"hosts": {"h1": {
        "address": "h", "app": {"path": str(repos.app), "remote": "origin", "branch": "main"}}}}), "t.yml").hosts["h1"]
    plan = parse_reset_plan(sh(reset_plan_cmd(host)).stdout)
    assert plan.head == repos.c2 and plan.target == c4
    (repos.app / "README").write_text("local change\n")
    out = sh(reset_cmd(host)).stdout
    assert out.splitlines()[-1] == c4 == repos.head()
    assert (repos.app / "README").read_text() == "four\n"


def words_after(cmd: str, marker: str) -> list:
    words = shlex.split(cmd)
    assert words.count(marker) == 1, cmd
    return words[words.index(marker) + 1:]


@pytest.mark.parametrize("build, refs", [
    (lambda: fetch_cmd("/a", "origin", "main"), ["origin", "+refs/heads/main:refs/remotes/origin/main"]),
    (lambda: fetch_cmd("/a", "origin", "main", scratch=True), ["origin", "+refs/heads/main:refs/fabops/dry-run/main"]),
    (lambda: fetch_ref_cmd("/a", "origin", "v1"), ["origin", "+v1:refs/fabops/ref/ref"]),
    (lambda: ls_remote_cmd("/a", "origin", "main"), ["origin", "refs/heads/main"]),
    (lambda: rev_parse_cmd("/a", "v1"), ["v1^{commit}"]),
    (lambda: rev_parse_each_cmd("/a", ["v1", "HEAD"]), ["v1^{commit}", "HEAD^{commit}"]),
    (lambda: diff_names_cmd("/a", "A", "B"), ["A", "B", "--"]),
    (lambda: show_cmd("/a", "A", "p"), ["A:p"]),
    (lambda: describe_cmd("/a", "A"), ["A", "--"]),
    (lambda: tree_has_cmd("/a", "A", ["p"]), ["A", "p"]),
])
def test_every_ref_comes_after_end_of_options(build, refs):
    assert words_after(build(), END_OF_OPTIONS) == refs


@pytest.mark.parametrize("build", [lambda: checkout_cmd("/a", "main", "A"), lambda: reset_hard_cmd("/a", "A")])
def test_checkout_and_reset_end_their_revision_with_a_separator(build):
    words = shlex.split(build())
    assert words[-2:] == ["A", "--"] and END_OF_OPTIONS not in words


def _git_version() -> tuple:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    return tuple(int(n) for n in re.findall(r"\d+", out)[:2])


@pytest.mark.skipif(_git_version() >= (2, 44), reason="git >= 2.44 accepts --end-of-options in checkout and reset")
def test_checkout_and_reset_refuse_the_marker_on_this_git(repos):
    """Why checkout_cmd and reset_hard_cmd use `REV --` (bullseye has 2.30,
    bookworm 2.39)."""
    for args in (["checkout", "--quiet", "--force", "-B", "main", END_OF_OPTIONS, repos.c1],
                 ["reset", "--quiet", "--hard", END_OF_OPTIONS, repos.c1]):
        r = sh(shlex.join(["git", "-C", str(repos.app), *args]), check=False)
        assert r.returncode != 0, args
    assert repos.head() == repos.c2
