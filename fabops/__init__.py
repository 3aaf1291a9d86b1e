"""fabops: keep a service deployed and operated over SSH.

This package must stay cheap to import: the host-side cron path
(`fabops local-update`, `fabops health`) imports it every few minutes, so
nothing here may pull in paramiko, fabric, cryptography or rich.
"""

__version__ = "0.1.0"
