"""fabops: keep a service deployed and operated over SSH.

This package must stay cheap to import: the host-side cron path
(`fabops local-update`, `fabops health`) imports it every few minutes, so
nothing here may pull in paramiko, fabric, cryptography or rich.
"""

__version__ = "0.1.0"
# The distribution name on the package index. `fabops` there is an unrelated
# project, so ours is installed as fabops-ssh; the import package and the
# console script are still `fabops` (docs/architecture.md, "Names").
DIST_NAME = "fabops-ssh"
