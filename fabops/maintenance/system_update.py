"""OS package updates (dnf, yum, apt): list, apply, and whether a reboot
is needed."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import CommandFailed, FabopsError
from ..inventory import Host
from ..probe import MARK, split_sections
from ..shell import Cmd, raw, sh
from ..target import Target


# Prints the manager's absolute path: sudo resets PATH (secure_path), and
# sudoers rules name absolute paths anyway.
DETECT = raw("for m in dnf yum apt-get; do if command -v $m >/dev/null 2>&1; then command -v $m; exit 0; fi; done; echo none")


def check_updates_cmd(manager: str) -> Cmd:
    if manager in ("dnf", "yum"):
        # exit 100 means "updates available", 0 none, anything else an error
        return sh("{manager} -q check-update; rc=$?; echo; echo {rc} $rc", manager=manager, rc=MARK + "rc")
    return sh("apt list --upgradable 2>/dev/null | tail -n +2; echo {rc} 0", rc=MARK + "rc")


def parse_check(manager: str, output: str) -> List[str]:
    s = split_sections(output.replace(f"{MARK}rc ", f"{MARK}rc\n"))
    body = output.split(MARK)[0]
    rc = s.get("rc", "").strip()
    if manager in ("dnf", "yum"):
        if rc not in ("0", "100"):
            raise CommandFailed(f"{manager} check-update failed (exit {rc or '?'})")
        if rc == "0":
            return []
        pkgs = []
        for line in body.splitlines():
            parts = line.split()
            if len(parts) >= 3 and "." in parts[0] and not line.startswith(("Obsoleting", "Security", "Last metadata")):
                pkgs.append(f"{parts[0]} {parts[1]}")
        return pkgs
    return [line.split("/")[0] + " " + (line.split()[1] if len(line.split()) > 1 else "")
            for line in body.splitlines() if "/" in line]


def update_cmd(manager: str, manager_path: str) -> Cmd:
    if manager in ("dnf", "yum"):
        return sh("sudo -n {m} -y -q upgrade && {{ if command -v needs-restarting >/dev/null 2>&1; then "
                  "sudo -n \"$(command -v needs-restarting)\" -r >/dev/null 2>&1 || echo REBOOT; fi; }}", m=manager_path)
    return sh("sudo -n {m} -y -q upgrade && {{ [ -f /var/run/reboot-required ] && echo REBOOT || true; }}", m=manager_path)


@dataclass
class UpdateReport:
    manager: str
    updates: List[str] = field(default_factory=list)
    applied: bool = False
    reboot_needed: Optional[bool] = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def system_update(c, host: Host, apply: bool) -> UpdateReport:
    t = Target.of(c, host)
    path = t.run(DETECT, "detecting the package manager").stdout.strip()
    manager = posixpath.basename(path)
    if manager == "none":
        raise FabopsError("no dnf, yum or apt-get on the host", host=host.name)
    try:
        updates = parse_check(manager, t.output(check_updates_cmd(manager)))
    except CommandFailed as exc:
        raise CommandFailed(exc.message, host=host.name) from None
    report = UpdateReport(manager, updates)
    if apply and updates:
        u = t.run(update_cmd(manager, path), f"{manager} upgrade", argv=[manager, "upgrade"],
                  timeout=3600)
        report.applied = True
        report.reboot_needed = "REBOOT" in u.stdout
    return report
