"""Invoke entry point: `inv --list`. Every task lives in fabops.tasks."""
from fabops.tasks import ns  # noqa: F401
