"""The pipeline's preflight (docs/pipeline.md): what must hold before a
deploy touches the checkout. Disk room, the `.env` keys the target needs,
and the checkout's local changes: whose they are, and saving a person's
work aside (--stash). Functions of the checkout and the files; the
pipeline (pipeline.py) decides what to do with the answers."""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..shell import join
from .files import ensure_dir

MIN_FREE_BYTES = 5 * 1024 * 1024


def disk_problem(dirs: Sequence[Tuple[str, str]]) -> Optional[str]:
    """Refuse to start when the checkout, the state dir or the log dir is
    (nearly) full: a half-written checkout or log is worse than no deploy.
    `dirs` is (label, path) pairs."""
    for label, path in dirs:
        try:
            st = os.statvfs(path)
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        if free < MIN_FREE_BYTES:
            return f"disk full: {free // 1024} KiB free for the {label} dir {path} (need {MIN_FREE_BYTES // 1048576} MiB)"
    return None


def env_pairs(text: str) -> Dict[str, str]:
    """KEY -> value of a dotenv file (`KEY=value`, `export KEY=value`;
    comments, blank and malformed lines skipped). Also shipped as source to
    the host by `restore-env`'s key diff (maintenance/env.py): it must use
    nothing but its argument."""
    pairs = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, value = line.split("=", 1)
        key = key.strip()
        if key and key.replace("_", "").isalnum():
            pairs[key] = value.strip()
    return pairs


def env_keys(text: str) -> List[str]:
    """Keys of a dotenv file, never values."""
    return list(env_pairs(text))


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def missing_env_keys(template: Optional[str], env_path: str) -> List[str]:
    """The keys `template` (the target's .env.example, None when it has
    none) names and the host's .env lacks: names only, never values."""
    if template is None:
        return []
    have = set(env_keys(read_text(env_path)))
    return [k for k in env_keys(template) if k not in have]


def status_path(entry: str) -> str:
    """The path of a parse_porcelain entry: 'M a', '?? b', 'R new <- old'."""
    path = entry.split(" ", 1)[1] if " " in entry else entry
    return path.split(" <- ", 1)[0]


def sort_changes(dirty: Sequence[str], own: Sequence[str],
                 tracked_in: Callable[[List[str]], List[str]]) -> Tuple[List[str], List[str], List[str]]:
    """Sort the checkout's changes (docs/pipeline.md, "Local changes"):
    - a person's work: modified tracked files, and untracked files the
      target would overwrite (`tracked_in` answers which), unless fabops'
      own steps made them (`own`);
    - kept: every other untracked file (build artefacts, __pycache__).
    Returns (person's changes as status lines, untracked in the way, kept)."""
    own = set(own)
    tracked = [d for d in dirty if not d.startswith("?? ") and status_path(d) not in own]
    untracked = [d[3:] for d in dirty if d.startswith("?? ")]
    in_the_way = tracked_in(untracked) if untracked else []
    theirs = [u for u in in_the_way if u not in own]
    kept = [u for u in untracked if u not in set(in_the_way) and u not in own]
    return tracked + [f"?? {u}" for u in theirs], theirs, kept


def stash(git, app: str, backup_dir: str, run_id: str, dirty: List[str], untracked: Sequence[str] = ()) -> str:
    """Save tracked changes as a patch and the untracked files in the way
    as a tarball under the backup dir (0700), then put those back to the
    commit. Other untracked files and ignored ones (.env, node_modules)
    stay where they are. Returns the directory they were saved in."""
    base = os.path.abspath(os.path.expanduser(backup_dir))
    dest = ensure_dir(os.path.join(base, "local-changes", f"{time.strftime('%Y%m%dT%H%M%S')}-{run_id[-6:]}"))
    os.chmod(base, 0o700)
    patch = git.run(join(["git", "-C", app, "diff", "--binary", "HEAD"]), "git diff").stdout
    with open(os.path.join(dest, "tracked.patch"), "w", encoding="utf-8") as fh:
        fh.write(patch)
    if untracked:
        import tarfile  # only when saving: the cron path does not pay for it

        with tarfile.open(os.path.join(dest, "untracked.tar.gz"), "w:gz") as tar:
            for rel in untracked:
                tar.add(os.path.join(app, rel), arcname=rel)
    with open(os.path.join(dest, "STATUS"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(dirty) + "\n")
    for name in os.listdir(dest):
        os.chmod(os.path.join(dest, name), 0o600)
    git.run(join(["git", "-C", app, "reset", "--quiet", "--hard"]), "git reset")
    for rel in untracked:  # saved above; only these, never a blanket clean
        os.remove(os.path.join(app, rel))
    return dest
