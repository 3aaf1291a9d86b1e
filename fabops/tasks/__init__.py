"""The task tree. Each topic module ends with its own `ns`; they are merged
flat here so that `inv deploy` (not `inv deploy.deploy`) works.

Nothing imported here may import fabric, paramiko or rich at module level:
`fabops local-update` on the host loads this whole tree from cron.
"""
from __future__ import annotations

from ._invoke import load as _load_invoke

_load_invoke()  # before the first `import invoke`: without unittest.mock (tasks/_invoke.py)

from invoke import Collection  # noqa: E402

from . import (agent, backup, cron, demo, deploy, envset, health, inventory, maintenance, observe, ping, promote, setup,
               update)

_MODULES = (inventory, ping, update, deploy, promote, observe, maintenance, envset, backup, health, cron, setup, demo,
            agent)

ns = Collection()
for _module in _MODULES:
    for _task in _module.ns.tasks.values():
        ns.add_task(_task)
    ns.configure(_module.ns.configuration())

# `inv` gets fabops' parse contract too: exit 64 with a did-you-mean for an
# unknown task or flag (tasks/program.py, serve_inv). Cheap: invoke is
# already loaded, and nothing changes unless Invoke's `inv` is running.
from .program import serve_inv as _serve_inv  # noqa: E402

_serve_inv()

__all__ = ["ns"]
