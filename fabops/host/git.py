"""git on the host: the command builders (the only place fabops spells a
git command line: the pipeline, `reset` and the laptop's dry run use them),
plus thin runners through a Target.

Every value is quoted; refs are validated before they get here. `app_path`
is a path on the host: a plain str when it is already expanded (the host
side), or shell.path(...) when the host's shell must expand a ~/.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ..errors import UsageError
from ..shell import Cmd, join
from ..shortsha import short_sha
from ..target import Target
from ..validate import ref_problem
from .verify import GPG_PROGRAM, beside


def git(app_path, *args: str) -> Cmd:
    return join(["git", "-C", app_path, *args])


# Before every ref, revision, remote or refspec handed to git: whatever
# follows is an argument, never an option (git >= 2.24; rev-parse >= 2.30,
# bullseye has 2.30.2). Not for checkout and reset: before git 2.44 (so on
# bullseye's 2.30 and bookworm's 2.39) the commands that keep a "--" for
# themselves keep this marker too and read it as a path ("Cannot update
# paths and switch to branch"). They get `REV --` instead: the "--" says
# that REV is a revision, never a file, and no ref reaches them with a
# leading "-" (validate.ref_problem refuses it; a SHA is hex).
END_OF_OPTIONS = "--end-of-options"


# A dry run fetches into its own ref, never the remote-tracking ref a real
# run updates at the same time: two fetches of one ref race on its lock and
# the loser fails ("cannot lock ref"), which must never be the real run.
DRY_RUN_REF = "refs/fabops/dry-run"
# `deploy --ref X` fetches X here rather than reading FETCH_HEAD, which any
# other fetch (a dry run, a person) may overwrite in between.
REF_FETCH = "refs/fabops/ref"


def tracking_ref(remote: str, branch: str) -> str:
    """The remote-tracking ref a real run's fetch updates: the branch's
    head as the checkout last fetched it (monitor and status read it
    without fetching: host/state.held_back)."""
    return f"refs/remotes/{remote}/{branch}"


def fetch_cmd(app_path: str, remote: str, branch: str, scratch: bool = False) -> Cmd:
    # An explicit refspec: update exactly remote/branch even in a checkout
    # cloned with --single-branch or a narrowed fetch config.
    if scratch:  # a planning run's: never the remote-tracking ref the real run reads
        return git(app_path, "fetch", "--quiet", "--no-tags", END_OF_OPTIONS, remote,
                   f"+refs/heads/{branch}:{DRY_RUN_REF}/{branch}")
    spec = f"+refs/heads/{branch}:{tracking_ref(remote, branch)}"
    return git(app_path, "fetch", "--quiet", "--prune", "--no-tags", END_OF_OPTIONS, remote, spec)


def fetch_ref_cmd(app_path: str, remote: str, ref: str, scratch: bool = False) -> Cmd:
    """Fetch a branch, tag or commit named by --ref into a ref of our own."""
    return git(app_path, "fetch", "--quiet", "--no-tags", END_OF_OPTIONS, remote,
               f"+{ref}:{DRY_RUN_REF if scratch else REF_FETCH}/ref")


# The check runs in an environment of its own, never the host's hosts.yml
# `env` (which a push may edit): GIT_CONFIG_COUNT/KEY/VALUE there could set
# gpg.ssh.program to a program that says "Good", and PATH could pick which
# ssh-keygen (or git) runs (docs/security.md, "Verified commits"). `env -i`
# by its absolute path (a PATH of the host's could choose `env` itself)
# clears every variable, GIT_* included; git then finds itself and
# ssh-keygen on the system's PATH only, and the C locale keeps git's words
# English, which verify.signature_words reads.
VERIFY_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def verify_commit_cmd(app_path, signers_file: str, commit: str) -> Cmd:
    """git's own check that `commit` carries an SSH signature by a key of
    `signers_file` (git >= 2.34) or an OpenPGP one by a key of the keyring
    beside it, checked by the gpgv wrapper setup wrote there (git picks by
    the signature's kind; docs/security.md, "Verified commits"). Every
    program is named, present or not: one missing fails the check, never
    falls back to another. An X.509 signature (gpgsm, with the deploy
    user's own trust store) is never good. Command-line -c wins over every
    config file, so the checkout's own .git/config cannot name another
    program either. No gpg.format: it chooses how git signs, not how it
    checks, and git 2.30 (bullseye) refuses its `ssh` value outright, where
    it ignores the gpg.ssh.* keys it does not know."""
    return join(["/usr/bin/env", "-i", f"PATH={VERIFY_PATH}", "LC_ALL=C",
                 "git", "-C", app_path, "-c", "gpg.ssh.program=ssh-keygen",
                 "-c", f"gpg.ssh.allowedSignersFile={signers_file}",
                 "-c", f"gpg.openpgp.program={beside(signers_file, GPG_PROGRAM)}", "-c", "gpg.x509.program=false",
                 "verify-commit", END_OF_OPTIONS, commit])


def ls_remote_cmd(app_path, remote: str, branch: str) -> Cmd:
    """What the remote's branch is now (`<sha>\t<ref>`), without fetching."""
    return git(app_path, "ls-remote", END_OF_OPTIONS, remote, "refs/heads/" + branch)


def ls_remote_ref_cmd(app_path, remote: str, ref: str) -> Cmd:
    """The remote's refs that a --ref names (a branch, a tag; matched from
    the end, so never fewer than a fetch of it finds), without fetching."""
    return git(app_path, "ls-remote", END_OF_OPTIONS, remote, ref)


def parse_ls_remote(output: str) -> Optional[str]:
    """ls_remote_cmd's output: the commit, or None."""
    words = output.split()
    return words[0] if words else None


def rev_parse_cmd(app_path: str, rev: str) -> Cmd:
    return git(app_path, "rev-parse", "--verify", "--quiet", END_OF_OPTIONS, f"{rev}^{{commit}}")


def rev_parse_each_cmd(app_path: str, revs: Sequence[str]) -> Cmd:
    """Each of `revs`' commit, a line each, in one git. Without --verify
    (one rev only) rev-parse would echo the marker; --revs-only prints
    revisions alone, and leaves out one that does not resolve (fewer lines:
    resolve them one by one then)."""
    return git(app_path, "rev-parse", "--revs-only", END_OF_OPTIONS, *[f"{rev}^{{commit}}" for rev in revs])


def merge_base_cmd(app_path: str, a: str, b: str) -> Cmd:
    """The best common ancestor of `a` and `b`: `a` itself when it is older
    than `b` (on its line), `b` when it is newer, else neither."""
    return git(app_path, "merge-base", END_OF_OPTIONS, a, b)


def status_cmd(app_path: str) -> Cmd:
    # Untracked files are listed one by one; ignored files (.env, node_modules) are not.
    return git(app_path, "status", "--porcelain=v1", "-z", "--untracked-files=all")


def diff_names_cmd(app_path: str, old: str, new: str) -> Cmd:
    return git(app_path, "diff", "--name-only", "-z", END_OF_OPTIONS, old, new, "--")


def checkout_cmd(app_path: str, branch: str, sha: str) -> Cmd:
    # -B keeps a named branch pointing at what is deployed, so `git status`
    # and `git log` on the host read naturally. `SHA --`, not END_OF_OPTIONS
    # (see there): the commit is a revision even if a file has its name.
    return git(app_path, "checkout", "--quiet", "--force", "-B", branch, sha, "--")


def reset_hard_cmd(app_path, rev: str) -> Cmd:
    """The checkout and the index exactly at `rev` (`REV --`, as checkout)."""
    return git(app_path, "reset", "--quiet", "--hard", rev, "--")


def show_cmd(app_path: str, sha: str, path: str) -> Cmd:
    return git(app_path, "show", END_OF_OPTIONS, f"{sha}:{path}")


def describe_cmd(app_path: str, sha: str) -> Cmd:
    # %x1f (unit separator) cannot appear in a subject or a name; the output
    # is always UTF-8, whatever the commit's own encoding.
    return join(["git", "-c", "i18n.logOutputEncoding=UTF-8", "-C", app_path, "log", "-1",
                 "--format=%s%x1f%an", END_OF_OPTIONS, sha, "--"])


def tree_has_cmd(app_path: str, sha: str, paths: Sequence[str]) -> Cmd:
    """Which of `paths` the commit's tree holds (literal paths, NUL-separated).
    No "--" after the commit: past END_OF_OPTIONS, ls-tree would take it as
    one more path."""
    return join(["git", "--literal-pathspecs", "-C", app_path, "ls-tree", "-r", "-z", "--name-only",
                 END_OF_OPTIONS, sha, *paths])


def parse_porcelain(output: str) -> List[str]:
    """`git status --porcelain -z` -> ['M file', '?? new', 'R new <- old']."""
    entries = output.split("\0")
    out: List[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":  # rename/copy: the next entry is the source
            src = entries[i] if i < len(entries) else ""
            i += 1
            out.append(f"{code.strip()} {path} <- {src}")
        else:
            out.append(f"{code.strip()} {path}")
    return out


def parse_names(output: str) -> List[str]:
    return [p for p in output.split("\0") if p]


def paths_match(changed: Sequence[str], watched: Sequence[str]) -> bool:
    """Whether any changed file is one of `watched` or lies under a watched dir."""
    for w in watched:
        w_dir = w.rstrip("/") + "/"
        for f in changed:
            if f == w.rstrip("/") or f.startswith(w_dir) or w in (".", "./"):
                return True
    return False


def check_ref(ref: str) -> str:
    problem = ref_problem(ref)
    if problem:
        raise UsageError(f"--ref {ref!r} is not a valid git ref: {problem}")
    return ref


class Git:
    """Runs git in the app checkout through `c` (local on the host)."""

    def __init__(self, c, app_path: str, env: Optional[dict] = None, scratch: bool = False):
        self.t = Target.of(c)
        self.path = app_path
        self.env = env
        # a planning run (host/dry_run.py) fetches into scratch refs and
        # never moves the remote-tracking ref the real run reads
        self.scratch = scratch

    def run(self, cmd: Cmd, what: str, warn: bool = False):
        """git with the host's environment (its proxy, its ssh key)."""
        return self.t.run(cmd, what, check=not warn, env=self.env)

    def verify_commit(self, signers_file: str, commit: str) -> Tuple[bool, str]:
        """(signed by an allowed key, git's words: stderr and stdout)."""
        r = self.run(verify_commit_cmd(self.path, signers_file, commit), "git verify-commit", warn=True)
        return r.ok, "\n".join(x for x in (r.stderr or "", r.stdout or "") if x)

    def fetch(self, remote: str, branch: str) -> str:
        """Fetch remote/branch; the ref it is now at (to resolve)."""
        scratch = self.scratch
        self.run(fetch_cmd(self.path, remote, branch, scratch), f"git fetch {remote} {branch}")
        return f"{DRY_RUN_REF}/{branch}" if scratch else f"{remote}/{branch}"

    def fetch_ref(self, remote: str, ref: str) -> Optional[str]:
        """The commit `ref` names on `remote` (fetched), or None."""
        scratch = self.scratch
        result = self.run(fetch_ref_cmd(self.path, remote, ref, scratch), f"git fetch {ref}", warn=True)
        if not result.ok:
            return None
        return self.resolve(f"{DRY_RUN_REF if scratch else REF_FETCH}/ref")

    def resolve(self, rev: str) -> Optional[str]:
        result = self.run(rev_parse_cmd(self.path, rev), f"git rev-parse {rev}", warn=True)
        sha = result.stdout.strip()
        return sha if result.ok and sha else None

    def head(self) -> Optional[str]:
        return self.resolve("HEAD")

    def resolve_each(self, *revs: str) -> List[Optional[str]]:
        """[resolve(rev) for rev in revs], in one git when all resolve (a
        cron poll asks for the branch's head and HEAD: a process fewer)."""
        result = self.run(rev_parse_each_cmd(self.path, revs), "git rev-parse " + " ".join(revs), warn=True)
        shas = result.stdout.split()
        if result.ok and len(shas) == len(revs):
            return list(shas)
        return [self.resolve(rev) for rev in revs]

    def describe(self, sha: str) -> tuple:
        """(subject, author) of a commit, UTF-8 intact; ("", "") if unknown."""
        result = self.t.run(describe_cmd(self.path, sha), check=False, env=self.env, encoding="utf-8")
        subject, _, author = result.stdout.rstrip("\n").partition("\x1f")
        return (subject, author) if result.ok else ("", "")

    def tracked_in(self, sha: str, paths: Sequence[str]) -> List[str]:
        """Those of `paths` that commit `sha` tracks (checking it out would overwrite them)."""
        found: List[str] = []
        for i in range(0, len(paths), 200):  # bounded argv
            found += parse_names(self.run(tree_has_cmd(self.path, sha, paths[i:i + 200]), "git ls-tree").stdout)
        # ls-tree -r answers a path that is a folder in the commit with the
        # files under it: a local file `foo` is in the way of a tracked `foo/x`
        exact = set(found)
        return [p for p in paths if p in exact or any(f.startswith(p + "/") for f in found)]

    def dirty(self) -> List[str]:
        return parse_porcelain(self.run(status_cmd(self.path), "git status").stdout)

    def changed(self, old: Optional[str], new: str) -> Optional[List[str]]:
        """Files changed between two commits; None means 'everything' (no old)."""
        if not old:
            return None
        result = self.run(diff_names_cmd(self.path, old, new), "git diff", warn=True)
        if not result.ok:
            return None  # old commit unknown here (history rewritten): treat as all changed
        return parse_names(result.stdout)

    def lineage(self, sha: str, of: str) -> str:
        """How commit `sha` stands to commit `of`, in one git: "older" (an
        ancestor), "newer" (a descendant) or "apart" (neither: the history
        was rewritten, or git does not know one of them)."""
        r = self.run(merge_base_cmd(self.path, sha, of), "git merge-base", warn=True)
        base = r.stdout.strip() if r.ok else ""
        return "older" if base == sha else "newer" if base == of else "apart"

    def checkout(self, branch: str, sha: str) -> None:
        self.run(checkout_cmd(self.path, branch, sha), f"git checkout {short_sha(sha)}")

    def show(self, sha: str, path: str) -> Optional[str]:
        result = self.run(show_cmd(self.path, sha, path), "git show", warn=True)
        return result.stdout if result.ok else None
