"""A URL's password, masked wherever fabops shows the URL.

A restic repository URL may carry a login in its userinfo
(`rest:https://user:password@host/repo`, docs/backups.md, "Off the host").
`hosts --json`, a hosts.yml problem and restic's error lines show it with
the password as `***` and the user kept (`rest:https://user:***@host/repo`):
a user name alone (`sftp:user@host:/srv`) is a login, not a secret, and
says which account is meant. Only what is shown is masked: host.yml and
restic's RESTIC_REPOSITORY keep the real URL (docs/security.md).

An HTTP check's URL is shown by its own rule (host/httpcheck.shown), which
hides its whole userinfo: there a token is often the user part.

Standard library only: the host side (host/restic.py) uses it too.
"""
from __future__ import annotations

import re

# `://user:password@`: the authority ends at the first `/` (or a space, in
# running text), and its last `@` ends the userinfo, as Go's url.Parse
# (restic's) reads it, so a password holding `@` is masked whole.
_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s]*@")


def redacted(text: str, mask: str = "***") -> str:
    """`text` with the password of every URL in it replaced by `mask`, the
    user name kept: `rest:https://user:***@host/repo`."""
    return _PASSWORD.sub(lambda m: f"{m.group(1)}:{mask}@", text)
