"""Cleanup of old recordings: never follows symlinks or leaves the rule's
directory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from ..host.record import counted
from ..host.would import Would
from ..inventory import Host
from ..shell import Cmd, path, raw, sh
from ..target import Target



@dataclass
class CleanResult:
    path: str
    glob: str
    files: int
    bytes: int
    dry_run: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def clean_cmd(rule_path: str, glob: str, older_than: float, dry_run: bool) -> Cmd:
    """find -P (the default) never follows symlinks, -maxdepth 1 never leaves
    the rule's directory, -type f skips links and directories. A rule path
    that is itself a symlink is examined as a link, never descended."""
    return sh(
        "[ -d {p} ] && [ ! -L {p} ] || {{ echo 0 0; exit 0; }}\n"
        "find {p} -mindepth 1 -maxdepth 1 -type f -name {glob} -mmin +{minutes} -printf '%s\\n'{action} "
        "| awk '{{n++; b+=$1}} END {{printf \"%d %d\\n\", n, b}}'\n",
        p=path(rule_path), glob=glob, minutes=max(1, int((older_than + 59) // 60)),
        action=raw("") if dry_run else raw(" -delete"))


def clean(c, host: Host, dry_run: bool = False) -> List[CleanResult]:
    t = Target.of(c, host)
    out = []
    for rule in host.cleanup:
        r = t.run(clean_cmd(rule.path, rule.glob, rule.older_than, dry_run), f"cleaning {rule.path}")
        parts = r.stdout.split()
        files, size = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, 0)
        out.append(CleanResult(rule.path, rule.glob, files, size, dry_run))
    return out


def clean_would(results: List[CleanResult]) -> List[Would]:
    """What `clean` deletes (pure), from a dry run's count with the real
    run's own find (clean_cmd without -delete): the dry run's `would`."""
    return [Would("delete", f"{r.path}/{r.glob}", f"{counted(r.files, 'file')}, {r.bytes / 1048576:.1f} MiB, older than "
                                                  "the rule's age")
            for r in results if r.files]
