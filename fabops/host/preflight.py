"""The pipeline's preflight (docs/pipeline.md): what must hold before a
deploy touches the checkout. Disk room, the `.env` keys the target needs,
and the checkout's local changes: whose they are, and saving a person's
work aside (--stash). Functions of the checkout and the files; the
pipeline (pipeline.py) decides what to do with the answers."""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..shell import Cmd, join, raw, sh
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


def env_pairs(text: str, spans=None) -> Dict[str, str]:
    """KEY -> value of a dotenv file, read as systemd reads an
    EnvironmentFile= (the services did before fabops.host.launch): `KEY=value`
    or `export KEY=value`; # and ; lines are comments; '...' is literal; in
    "..." a backslash escapes " \\ ` $ only, outside quotes any character,
    and trailing blanks are dropped; a quoted value may span lines; malformed
    lines are skipped. Shipped as source (restore-env, env-set): it uses only
    its arguments. `spans` gets (key or None, start, end) of each line or
    assignment read (CR LF, CR as LF): env-set's merge cuts there, one tokenizer."""
    pairs, spans = {}, [] if spans is None else spans
    # CR LF and CR end a line, as for systemd; an unquoted line's last \\ joins the next
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    i, n = 0, len(text)
    while i < n:
        start, end = i, text.find("\n", i)
        end = n if end < 0 else end
        line = text[i:end].lstrip()
        if not line or line[0] in "#;" or "=" not in line:
            i = end + 1
            spans.append((None, start, min(i, n)))
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key = line.split("=", 1)[0].strip()
        # the value is read from the text, so that a quote may span lines
        i = text.index("=", text.find(key, i)) + 1
        while i < n and text[i] in " \t":
            i += 1
        value, pending = [], ""  # pending: unquoted blanks, dropped at the end of the line
        while i < n and text[i] != "\n":
            c = text[i]
            if c in "'\"":
                close = c
                value.append(pending)
                pending = ""
                i += 1
                while i < n and text[i] != close:
                    if close == '"' and text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\`$':
                        i += 1
                    value.append(text[i])
                    i += 1
                i += 1  # the closing quote
                continue
            if c in " \t":
                pending += c
            else:
                if c == "\\" and i + 1 < n and text[i + 1] == "\n":
                    i += 2  # a continuation: the value goes on on the next line
                    continue
                if c == "\\" and i + 1 < n:
                    i += 1
                    c = text[i]
                value.append(pending + c)
                pending = ""
            i += 1
        i += 1
        ok = bool(key) and key.replace("_", "").isalnum() and not key[0].isdigit()
        pairs.update({key: "".join(value)} if ok else {})
        spans.append((key if ok else None, start, min(i, n)))
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


def save_changes_cmd(app, dest, untracked_list=None, env_file=None) -> Cmd:
    """Save a checkout's local changes into `dest` (0700, files 0600; its
    parent made 0700 too): tracked changes as a binary patch
    (tracked.patch), untracked files as a tarball (untracked.tar.gz: those
    named in `untracked_list`, a NUL-separated file the caller wrote (a list
    in the command itself would hit the kernel's argument limit), or with
    None every untracked file git does not ignore),
    `git status` (STATUS), HEAD, and with `env_file` a copy of it (env).
    Prints `dest`. The one way fabops saves a person's work: `--stash` in
    the pipeline and `reset` (agentless, over SSH) both run it. `app`,
    `dest` and `env_file` are host paths (str, or shell.path for ~/).
    Restore: `git apply tracked.patch && tar -xzf untracked.tar.gz`."""
    if untracked_list is None:
        listing = raw("git ls-files --others --exclude-standard -z > \"$D\"/untracked.list")
    else:
        listing = sh("mv {f} \"$D\"/untracked.list", f=untracked_list)
    save_env = sh("if [ -f {env} ]; then cp {env} \"$D\"/env; fi\n", env=env_file) if env_file else raw("")
    return sh(
        "set -e; umask 077\n"
        "D={d}; mkdir -p \"$D\"; chmod 700 \"$D\" \"$(dirname \"$D\")\"\n"
        "cd {app}\n"
        "{save_env}"
        "git diff --binary HEAD > \"$D\"/tracked.patch\n"
        "git status --porcelain=v1 --untracked-files=all > \"$D\"/STATUS\n"
        "git rev-parse HEAD > \"$D\"/HEAD\n"
        "{listing}\n"
        "if [ -s \"$D\"/untracked.list ]; then tar --null -T \"$D\"/untracked.list -czf \"$D\"/untracked.tar.gz; fi\n"
        "rm -f \"$D\"/untracked.list; chmod 600 \"$D\"/*\n"
        "echo \"$D\"\n",
        d=dest, app=app, save_env=save_env, listing=listing)


def stash(git, app: str, backup_dir: str, run_id: str, untracked: Sequence[str] = ()) -> str:
    """--stash: save the tracked changes and the untracked files in the way
    (save_changes_cmd) under <backup_dir>/local-changes/, then put those
    back to the commit. Other untracked files and ignored ones (.env,
    node_modules) stay where they are. Returns the directory they were
    saved in."""
    base = os.path.abspath(os.path.expanduser(backup_dir))
    ensure_dir(base)
    os.chmod(base, 0o700)
    dest = ensure_dir(os.path.join(base, "local-changes", f"{time.strftime('%Y%m%dT%H%M%S')}-{run_id[-6:]}"))
    listing = os.path.join(dest, ".in-the-way")
    with open(listing, "wb") as fh:
        fh.write(b"".join(os.fsencode(rel) + b"\0" for rel in untracked))
    git.t.run(save_changes_cmd(app, dest, listing), "saving local changes", env=git.env)
    git.run(join(["git", "-C", app, "reset", "--quiet", "--hard"]), "git reset")
    for rel in untracked:  # saved above; only these, never a blanket clean
        os.remove(os.path.join(app, rel))
    return dest
