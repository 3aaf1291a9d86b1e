"""The history record of the runs that change the app's `.env` without
moving a commit: env-set, env-unset, env-push and restore-env
(docs/maintenance.md, "Secrets without an editor"). Each is recorded as a
reset is (maintenance/common.record_run: one history line and its
update-log line), so `history`, `status`, `monitor` and the update log see
it; key names only, never a value (docs/security.md)."""
from __future__ import annotations

import json
import time
from typing import Optional

from .. import errors
from ..inventory import Host
from ..probe import MARK, split_sections
from ..shell import quote_path, sh
from ..target import Target


def exit_code(value: dict) -> int:
    """A change whose gate failed is FAILED (2: the old .env is back and
    its services came up), BROKEN (5) when they did not come up on it
    either (docs/errors.md)."""
    if not value.get("rolled_back"):
        # a forced removal of keys the next deploy needs (required.required_gone): a warning
        return errors.WARNING if value.get("warnings") else errors.OK
    after = value.get("ready_after_rollback") or []
    return errors.FAILED if all(x["ok"] for x in after) else errors.BROKEN


def read_deployed(t: Target, host: Host) -> Optional[str]:
    """The deployed commit state.json names (deployed_of), read on its own
    (restore-env, whose plan does not read unit_files_cmd)."""
    return deployed_of(t.output(sh("echo {m}state; cat {state} 2>/dev/null; echo", m=MARK,
                                   state=quote_path(host.paths.state))))


def deployed_of(output: str) -> Optional[str]:
    """The deployed commit state.json names (unit_files_cmd's `state`
    section), for the record's `at X`; None when it names none."""
    try:
        state = json.loads(split_sections(output).get("state") or "{}")
    except ValueError:
        return None
    deployed = state.get("deployed") if isinstance(state, dict) else None
    return deployed if isinstance(deployed, str) else None


# The result a real run records (docs/maintenance.md): the keys changed and
# the gate passed; the gate failed and the old .env is back, its services
# ready on it; they did not come up on it either. A run stopped by an error
# after it took the lock (the backup, the write, a restart) is `failed`.
# Words of their own: a deploy's `rolled_back` names commits that ran well
# (host/plan.good_commits), which these runs never move.
RESULTS = {errors.OK: "changed", errors.WARNING: "changed", errors.FAILED: "reverted", errors.BROKEN: "broken"}


class EnvRun:
    """One env-set, env-unset or env-push run's history record and
    update-log line (maintenance/common.record_run: the host's history,
    as a reset's): trigger the task's name, the deployed commit as both
    ends (the run moves no commit), the result (RESULTS, or `failed`),
    and key names only, never a value (docs/security.md). A record that
    cannot be written is said, and the run's result stands."""

    def __init__(self, c, host: Host, trigger: str, actor: str, deployed: Optional[str], say):
        from .common import stamp

        self.c, self.host, self.trigger, self.actor, self.deployed, self.say = c, host, trigger, actor, deployed, say
        self.run_id, self.started = stamp(fine=True), time.monotonic()
        self.written = False  # the .env holds this run's change (wrote): what a stop leaves behind

    def wrote(self, changed: bool = True) -> None:
        """Said by the run's steps: the .env now holds the change (True),
        or the previous one is back (False), so a stop knows which it
        leaves (_stopped)."""
        self.written = changed

    def recorded(self, apply) -> dict:
        """`apply()`'s value, its run recorded (the no-op that another run
        made meanwhile is not); anything that stopped it (an error, an
        OSError, Ctrl-C) is recorded (_stopped) and raised again."""
        try:
            value = apply()
        except BaseException as exc:
            self._stopped(exc, {})
            raise
        if value.get("changed"):
            code = exit_code(value)
            said = _said(value, self.host.env_file)
            value = _with(value, {"run_id": self.run_id}, self._write(RESULTS[code], code, said, value))
        value.pop("key_names", None)
        return value

    def restored(self, apply, name: str) -> dict:
        """restore-env's `apply()`, recorded: `restored` with its backup's
        name and the keys it changed, or `failed` (a service not ready
        after it: exit 2, as the task exits; or what stopped it, recorded by
        _stopped and raised again)."""
        try:
            value = apply()
        except BaseException as exc:
            self._stopped(exc, {"backup": name})
            raise
        diff = value.get("diff") or {}
        said = "; ".join(f"{kind} {', '.join(diff[kind])}" for kind in ("added", "removed", "changed")
                         if diff.get(kind)) or "no key changed"
        failed = [str(s.get("service") or "?") for s in value.get("services") or [] if not s.get("ok")]
        message = f"{name}: {said}" + (f"; {', '.join(failed)} not ready after it" if failed else "")
        code = errors.FAILED if failed else (errors.WARNING if value.get("warnings") else errors.OK)
        return _with(value, {"run_id": self.run_id}, self._write("failed" if failed else "restored", code, message,
                                                                  {"backup": name, **value}))

    def _stopped(self, exc: BaseException, value: dict) -> None:
        """The record of a run something stopped: not only a FabopsError
        but Ctrl-C or an OSError during the restarts, which would leave a
        changed .env with no record (#29). `failed` before the .env was
        written or once the previous one is back; `broken` when it holds
        the change and its services' state is unknown (a person is
        needed, docs/maintenance.md). The code is the one the run exits
        with (docs/errors.md)."""
        if isinstance(exc, errors.FabopsError):
            code = exc.exit_code
        elif isinstance(exc, KeyboardInterrupt):
            code = errors.INTERRUPTED
        else:
            from ..fanout import map_failure

            mapped = map_failure(exc, self.host.name)
            code = mapped.exit_code if mapped else errors.INTERNAL
        said = str(exc) or type(exc).__name__
        try:
            if self.written:
                self._write("broken", code, f"stopped after {self.host.env_file} was changed, not put back: {said}",
                            value)
            else:
                self._write("failed", code, f"stopped: {said}", value)
        except Exception as lost:  # noqa: BLE001 - the connection that died: what stopped the run is raised
            self.say(f"this run is not in the host's history: {lost or type(lost).__name__}")

    def _write(self, result: str, code: int, message: str, value: dict) -> dict:
        from .common import record_run

        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ts": time.time(), "run_id": self.run_id,
               "trigger": self.trigger, "actor": self.actor, "host": self.host.name, "from": self.deployed,
               "to": self.deployed, "result": result, "exit_code": code, "message": message,
               "duration": round(time.monotonic() - self.started, 3), "steps": [],
               "warnings": list(value.get("warnings") or ()), "backup": value.get("backup")}
        try:
            record_run(self.c, self.host, rec, {})
        except errors.FabopsError as exc:  # the change is made: said, and its result stands
            warning = f"this run is not in the host's history: {exc}"
            self.say(warning)
            return {"warnings": [warning]}
        return {}


def _with(value: dict, more: dict, written: dict) -> dict:
    """`value` with `more`, and a lost record's warning (_write) added to
    the run's own warnings, not in their place."""
    lost = written.get("warnings") or []
    return {**value, **more, **({"warnings": list(value.get("warnings") or []) + lost} if lost else {})}


def _said(value: dict, env_file: str) -> str:
    """The record's message, short enough for history's row: the keys
    (names only, the kinds that have any) and how the gate went, its
    the service that failed the gate last (render.keep_reason keeps it)."""
    names = value.get("key_names") or {}
    said = "; ".join(f"{kind} {', '.join(names[kind])}" for kind in ("added", "removed", "changed") if names.get(kind))
    said = said or "keys changed"
    if not value.get("rolled_back"):
        return f"{said}; gate passed"
    failed = [str(x.get("service") or "?") for x in value.get("ready") or [] if not x.get("ok")]
    back = all(x.get("ok") for x in value.get("ready_after_rollback") or [])
    # the result says the rest: `reverted` (the previous .env back, its
    # services ready on it) or `broken` (not ready on it either)
    return f"{said}; {', '.join(failed) or 'a service'} failed its gate" + (
        "" if back else f"; not ready on the previous {env_file} either")
