"""Lifecycle hooks (docs/pipeline.md, "Hooks"): running one.

hosts.yml's `hooks:` hold shell code the operator wrote (validate.HOOKS:
before_restart, after_deploy, on_rollback, on_failure). Whether a hook runs
is the plan's decision (host/plan.py, Plan.hooks and hook_runs); the
pipeline (host/pipeline.py) calls `run_hook` where its step is. Here only
how one runs:

- as the deploy user (whoever runs this pipeline: fabops never calls sudo
  for a hook) in the app directory, stdin from /dev/null;
- its script in a file of its own in fabops' home (0600 in the 0700 home),
  run with `bash FILE`: the script is never an argv `ps` shows, and a
  command in it that reads stdin cannot eat the rest of the script, as it
  could with `bash -s`;
- with a documented environment (`hook_env`), the host's `env` and the
  FABOPS_* variables; the app's `.env` is not exported (the app's own code
  reads it; a hook that needs it sources it itself, so its values never
  sit in the environment of a step whose output fabops logs);
- under coreutils `timeout`, which runs it in a process group of its own
  and on expiry sends that whole group SIGTERM, then SIGKILL 5 s later:
  nothing it started is left behind (a child that leaves the group with
  setsid is the script's own choice);
- its output (stdout and stderr) captured, the last HOOK_LOG_BYTES of it
  in the update log and its last line in the run's step.

Standard library only: runs under cron on the host's Python 3.9.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Optional

from ..records import Plain, plain
from ..shell import Cmd, in_dir, path, sh

# What a hook's output keeps in the update log: its end, where the error is
HOOK_LOG_BYTES = 65536
# After the timeout's SIGTERM, the group has this long before SIGKILL
KILL_AFTER = 5
# Target.run's own timeout beyond the hook's: only if `timeout` itself hangs
BACKSTOP = 15.0


@plain
class HookRun(Plain):
    name: str
    ok: bool
    exited: int
    seconds: float
    output: str = ""
    timed_out: bool = False

    def said(self, timeout: float) -> str:
        """The step's message: how it ended, then its last line of output."""
        tail = self.output.strip().splitlines()[-1][:200] if self.output.strip() else ""
        how = ("ok" if self.ok else f"timed out after {timeout:g} s (killed with its process group)"
               if self.timed_out else f"exit {self.exited}")
        return how + (f": {tail}" if tail else "")


def hook_cmd(app: str, script_path: str, timeout: float) -> Cmd:
    """Run the hook's script file under `timeout` in the app directory
    (module docstring: the process group, SIGTERM then SIGKILL)."""
    run = sh("exec timeout -k {kill} {timeout} bash {script} </dev/null 2>&1", kill=KILL_AFTER, timeout=timeout,
             script=path(script_path))
    return in_dir(app, run)


def hook_env(host, name: str, *, run_id: str, trigger: str, actor: str, from_: Optional[str],
             to: Optional[str], result: str = "", message: str = "", app: str = "") -> Dict[str, str]:
    """The hook's environment (docs/pipeline.md, "Hooks"): the host's `env`,
    then the FABOPS_* variables. A value fabops does not know yet is ""."""
    return {**host.env, "FABOPS_HOOK": name, "FABOPS_HOST": host.name, "FABOPS_RUN_ID": run_id,
            "FABOPS_TRIGGER": trigger, "FABOPS_ACTOR": actor, "FABOPS_FROM": from_ or "", "FABOPS_TO": to or "",
            "FABOPS_RESULT": result, "FABOPS_MESSAGE": message, "FABOPS_APP": app}


def run_hook(t, home: str, app: str, name: str, script: str, timeout: float, env: Dict[str, str]) -> HookRun:
    """Run one hook on this machine (the pipeline's Target `t`): its script
    written to a file in `home`, removed after the run."""
    import tempfile  # here: cron's polls that run no hook import no more (test_fastpath)

    fd, script_path = tempfile.mkstemp(prefix=f"hook-{name}-", suffix=".sh", dir=home)
    started = time.monotonic()
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(script if script.endswith("\n") else script + "\n")
        try:
            result = t.run(hook_cmd(app, script_path, timeout), f"the {name} hook", check=False, env=env,
                           timeout=timeout + KILL_AFTER + BACKSTOP)
        except Exception as exc:  # Invoke's and localrun's CommandTimedOut, by name (fanout.map_failure)
            if type(exc).__name__ != "CommandTimedOut":
                raise
            seconds = time.monotonic() - started
            return HookRun(name, False, -1, seconds, _bounded(getattr(exc.result, "stdout", "") or ""), True)
    finally:
        try:
            os.unlink(script_path)
        except OSError:
            pass
    seconds = time.monotonic() - started
    # coreutils timeout exits 124 after its SIGTERM; when SIGKILL was
    # needed it is itself in the group it kills (exit -9 or 137): a failure
    # that came at the timeout is the timeout's
    timed_out = not result.ok and seconds >= timeout
    return HookRun(name, result.ok, result.exited, seconds, _bounded(result.stdout + result.stderr), timed_out)


def _bounded(output: str) -> str:
    """The last HOOK_LOG_BYTES of a hook's output, saying what was cut."""
    data = output.encode("utf-8", "replace")
    if len(data) <= HOOK_LOG_BYTES:
        return output
    kept = data[-HOOK_LOG_BYTES:].decode("utf-8", "replace")
    return f"[{len(data) - HOOK_LOG_BYTES} bytes of output cut]\n{kept}"


def hook_words(hook) -> str:
    """A hook as a dry run names it: `12 lines, timeout 60 s`."""
    lines = len(hook.run.rstrip("\n").splitlines()) or 1
    return f"{lines} line{'' if lines == 1 else 's'}, timeout {hook.timeout:g} s"
