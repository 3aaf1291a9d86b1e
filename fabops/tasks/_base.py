"""What every fabops task shares: the `-H` flag, common help, and the one
place where errors become a line on stderr and an exit code.

Task modules stay thin: parse flags, select hosts, open connections, call the
library, render. Importing this module must stay cheap (no rich, no fabric):
the host-side cron path goes through it.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Callable, List, Optional

from invoke import Exit, Task, task
from invoke.exceptions import UnexpectedExit

from .. import errors
from ..errors import FabopsError, UsageError

COMMON_HELP = {
    "hosts": "Hosts or groups, comma-separated (default: the inventory's `default`).",
    "inventory": "Path of hosts.yml (default: $FABOPS_INVENTORY, or hosts.yml here or in a parent).",
    "json": "Print machine-readable JSON on stdout instead of tables.",
    "parallel": "How many hosts to work on at once (default 10).",
    "accept_new": "Trust and record a host key never seen before (trust on first use).",
    "connect_timeout": "Seconds to wait for the SSH connection (default 10).",
    "dry_run": "Show what would change and change nothing.",
    "yes": "Do not ask for confirmation.",
}


class FabopsTask(Task):
    """An Invoke Task with `-H` for `--hosts` and fabops error handling.

    Invoke would give a parameter named `hosts` the short flag `-h`; `-H`
    matches Fabric 1, Fabric 2's `fab -H` and every operator's muscle memory.
    """

    # Common flags keep the same short form in every task, whatever other
    # parameters come first (Invoke hands out short flags first come, first served).
    RESERVED_SHORT = {"hosts": "H", "inventory": "i", "json": "j"}

    def arg_opts(self, name, default, taken_names):
        if name in self.RESERVED_SHORT:
            opts = super().arg_opts(name, default, set(taken_names) | {name[0]})
            opts["names"] = [opts["names"][0], self.RESERVED_SHORT[name]]
            return opts
        reserved = set(self.RESERVED_SHORT.values()) | {"h"}
        return super().arg_opts(name, default, set(taken_names) | reserved)

    def get_arguments(self, ignore_unknown_help=None):
        # Invoke pops each flag's help while building the arguments, so a
        # second call (docs generation, tests, an embedding program) would
        # see none: keep the task's help intact.
        saved = dict(self.help)
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = saved

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except (Exit, KeyboardInterrupt):
            raise
        except FabopsError as exc:
            if debug_enabled():
                raise
            raise Exit(f"fabops: {exc}", code=exc.exit_code) from None
        except UnexpectedExit as exc:
            if debug_enabled():
                raise
            raise Exit(f"fabops: {describe_unexpected_exit(exc)}", code=errors.FAILED) from None
        except Exception as exc:  # noqa: BLE001 - the one place a bug is caught
            if debug_enabled():
                raise
            from ..fanout import map_failure

            mapped = map_failure(exc)
            if mapped is not None:
                raise Exit(f"fabops: {mapped}", code=mapped.exit_code) from None
            raise Exit(
                f"fabops: internal error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)",
                code=errors.INTERNAL,
            ) from None


def fabops_task(*args, **kwargs) -> Callable:
    """`@task` with FabopsTask and the common flag help merged in."""
    kwargs.setdefault("klass", FabopsTask)

    def decorate(fn):
        import inspect

        params = inspect.signature(fn).parameters
        help_ = {k: v for k, v in COMMON_HELP.items() if k in params}
        help_.update(kwargs.pop("help", {}) or {})
        return task(help=help_, **kwargs)(fn)

    if args and callable(args[0]):
        fn, args = args[0], args[1:]
        return decorate(fn)
    return decorate


def debug_enabled() -> bool:
    """`--debug` (Invoke's core flag, which turns on DEBUG logging) or FABOPS_DEBUG=1."""
    if os.environ.get("FABOPS_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def describe_unexpected_exit(exc: UnexpectedExit) -> str:
    result = exc.result
    lines = [ln for ln in (result.stderr or result.stdout or "").strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    return f"command failed with exit {result.exited}: {last}"


def load_inventory(path: Optional[str] = None):
    from ..inventory import load

    return load(path)


def select(inventory_path: Optional[str], hosts: Optional[str]):
    """Load the inventory and resolve `-H`; returns (inventory, [Host])."""
    inv = load_inventory(inventory_path)
    return inv, inv.select(hosts)


def check_parallel(parallel: Any) -> int:
    try:
        value = int(parallel)
    except (TypeError, ValueError):
        raise UsageError(f"--parallel must be a whole number, not {parallel!r}") from None
    if value < 1:
        raise UsageError("--parallel must be at least 1")
    return value


def check_timeout(value: Any, flag: str) -> Optional[float]:
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be a number of seconds, not {value!r}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} must be positive")
    return seconds


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def finish(code: int, message: Optional[str] = None) -> None:
    """End a task with `code` (after it rendered its own output)."""
    if code != errors.OK:
        raise Exit(message, code=code)


def names(hosts: List[Any]) -> str:
    return ", ".join(h.name for h in hosts)
