"""The keys the deployed checkout's `.env.example` names, which the next
deploy's preflight requires of the `.env` (host/preflight.missing_env_keys,
docs/pipeline.md): a run that changes the `.env` without a deploy
(env-unset, env-push --prune: maintenance/envset.py; restore-env:
maintenance/env.py) must not remove one, or the host is left in a state
fabops' own next run refuses (docs/maintenance.md). One reader for both."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..errors import CommandFailed
from ..host.git import rev_parse_cmd, show_cmd
from ..host.preflight import env_keys
from ..host.would import Would
from ..inventory import Host
from ..probe import MARK, split_sections
from ..shell import Cmd, quote_path, sh
from ..shortsha import short_sha

# (the checkout's commit, the keys its .env.example names): required_keys
Required = Tuple[Optional[str], List[str]]


def required_cmd(host: Host) -> Cmd:
    """The checkout's commit and its committed .env.example, the sections
    required_keys reads: a part of a round trip the run makes anyway
    (unit_files_cmd; restore-env's key diff, maintenance/env.env_diff)."""
    app = quote_path(host.app.path)
    # each line of the file behind a `|`: a committed line that reads like
    # a section marker (`@@fabops:units`) stays the file's, never a section
    # of this round trip (required_keys takes the `|` off)
    return sh("echo {m}head; {head} 2>/dev/null\necho {m}example; {{ {example} 2>/dev/null; echo; }} | sed 's/^/|/'\n",
              m=MARK, head=rev_parse_cmd(app, "HEAD"), example=show_cmd(app, "HEAD", host.env_template))


def required_keys(output: str) -> Tuple[Optional[str], List[str]]:
    """(the checkout's commit, the keys its .env.example names): what the
    pipeline's preflight requires of the .env before a deploy (host/
    preflight.missing_env_keys, the same reading: env_keys). None and no
    keys when there is no checkout; no keys when the commit has no
    .env.example."""
    s = split_sections(output)
    head = s.get("head", "").strip() or None
    example = "\n".join(line[1:] for line in s.get("example", "").splitlines() if line.startswith("|"))
    return head, (env_keys(example) if head else [])


def required_gone(host: Host, diff: Dict[str, object], required: Tuple[Optional[str], List[str]],
                  force: bool, restoring: Optional[str] = None) -> List[Would]:
    """A removal of keys the checkout's .env.example names: refused
    (CommandFailed, exit 2: the service still runs, but the next deploy's
    preflight stops on the missing keys), or with `force` a `warn` step
    the run says before it changes anything. `restoring`: restore-env's
    backup, whose restore is what removes them (maintenance/env.
    restore_would), said in its words."""
    commit, keys = required
    gone = [k for k in keys if k in (diff.get("removed") or ())]
    if not gone:
        return []
    said, it = f"{host.env_template} of {short_sha(commit)} needs {', '.join(gone)}", "it" if len(gone) == 1 else "them"
    doing, does, done = ((f"restoring {restoring} without {it}", "restores it", f"{restoring} restored without {it}")
                         if restoring else (f"removing {it}", f"removes {it}", "removed"))
    if not force:
        raise CommandFailed(f"{said}: {doing} would make the next deploy refuse this host; --force {does} anyway",
                            host=host.name)
    return [Would("warn", host.env_file, f"{said}: {done} anyway (--force); the next deploy refuses this host "
                  "until it is set again")]
