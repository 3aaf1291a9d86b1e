"""Cleanup of old recordings: never follows symlinks or leaves the rule's
directory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

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
    older_than: Optional[float] = None  # the rule's age (seconds), for the words: not a result

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("path", "glob", "files", "bytes", "dry_run")}


def age_as_written(seconds: Optional[float]) -> str:
    """A rule's age as hosts.yml writes one (`1d`, `2h`, `90s`: the largest
    unit it is a whole number of), so a dry run names the rule's own age."""
    if seconds is None:
        return "the rule's age"
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


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
        out.append(CleanResult(rule.path, rule.glob, files, size, dry_run, rule.older_than))
    return out


def clean_would(results: List[CleanResult]) -> List[Would]:
    """What `clean` deletes (pure), from a dry run's count with the real
    run's own find (clean_cmd without -delete): the dry run's `would`."""
    from ..host.report import size_text

    return [Would("delete", f"{r.path}/{r.glob}", f"{counted(r.files, 'file')}, {size_text(r.bytes)}, older than "
                                                  f"{age_as_written(r.older_than)}")
            for r in results if r.files]
