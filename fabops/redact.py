"""A URL's password, masked wherever fabops shows the URL.

A restic repository URL may carry a login in its userinfo
(`rest:https://user:password@host/repo`, docs/backups.md, "Off the host").
`hosts --json`, a hosts.yml problem and restic's error lines show it with
the password as `***` and the user kept (`rest:https://user:***@host/repo`):
a user name alone (`sftp:user@host:/srv`) is a login, not a secret, and
says which account is meant. Only what is shown is masked: host.yml and
restic's RESTIC_REPOSITORY keep the real URL (docs/security.md).

A whole value (hosts --json, a hosts.yml problem's quote) is masked from
`://user:` to where its userinfo ends (redacted_url, userinfo_of): a
password may hold a space or a `/`, which end the match in running text. An HTTP check's URL hides its
whole userinfo (hidden_userinfo: host/httpcheck.shown, the rule the host
applies to its own messages): there a token is often the user part. Values under a name that says secret (a check's
`Authorization` header, an env key like `API_TOKEN`) show as `***`.

Standard library and host/httpcheck only: the host side (host/restic.py)
uses it too.
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

from .host.httpcheck import shown

# `://user:password@`: the authority ends at the first `/` (or a space, in
# running text), and its last `@` ends the userinfo, as Go's url.Parse
# (restic's) reads it, so a password holding `@` is masked whole.
_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s]*@")


def redacted(text: str, mask: str = "***") -> str:
    """`text` with the password of every URL in it replaced by `mask`, the
    user name kept: `rest:https://user:***@host/repo`."""
    return _PASSWORD.sub(lambda m: f"{m.group(1)}:{mask}@", text)


def userinfo_of(url: str) -> Tuple[Optional[str], bool]:
    """A URL's `user:password` part (None when it has none) and whether
    its authority holds it whole. The userinfo ends at the authority's last
    `@` (a path may hold one: rest:https://u:pw@host/a@b); with none
    there, a `/` in the password ended the authority early (whole: False,
    as restic's parser would cut it) and the value's last `@` ends it; with
    no `:` before the first `/` but a port's, the `@` is the path's
    (host:8000/a@b). redacted_url masks by it, validate refuses by it."""
    rest = url.partition("://")[2]
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        return authority.rpartition("@")[0], True
    if "@" in rest and ":" in authority and not authority.rpartition(":")[2].isdigit():
        return rest.rpartition("@")[0], False
    return None, True


def redacted_url(url: str, mask: str = "***") -> str:
    """One URL value with its password masked, the user kept: everything
    between `://user:` and where its userinfo ends (userinfo_of: a
    password's space or `/` included). A value without `://` is masked as
    running text."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return redacted(url, mask)
    userinfo, _ = userinfo_of(url)
    if userinfo is None:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}:{mask}@{rest[len(userinfo) + 1:]}" if colon else url


# An HTTP check's URL as shown: its whole `user:pass@` (or a token as the
# user part) is `***@`; the host applies the same rule to its messages, in
# a module that imports nothing of fabops, so it is that one function.
hidden_userinfo = shown


# A header or env name whose value is a credential (case-insensitive).
_SECRET_NAME = re.compile(r"authorization|cookie|token|secret|passw|api[-_]?key|private|credential|webhook", re.I)


def secret_url(url: str) -> str:
    """A URL that is itself the secret (a heartbeat's: its path holds the
    check's key), as shown: scheme and host kept, to say which service,
    the rest `***` (docs/security.md)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    return f"{scheme}://{authority}/***"


def secret_name(name: str) -> bool:
    """Whether a header's or an env variable's value is shown as `***`."""
    return bool(_SECRET_NAME.search(name))
