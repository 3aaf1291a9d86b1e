"""Only verified commits ship (docs/security.md, "Verified commits"): where
the allowed-signers file lives, what setup writes into it, and git's own
check of a commit against it.

The file, not hosts.yml's `verify:`, is what makes a host require signed
commits: setup writes it as root (0644, in a root-owned directory outside
the checkout and the deploy user's home), so neither a push that edits
hosts.yml nor a shell as the deploy user can remove or widen it. A host
whose file is there checks every target before checkout.

Standard library only: runs under cron on the host's Python 3.9.
"""
from __future__ import annotations

import os
import re
from typing import Optional, Tuple

# Root's directory for the app's allowed signers (setup makes it 0755 root)
SIGNERS_DIR = "/etc/fabops"
# git checks SSH signatures from 2.34 on (gpg.format=ssh): bookworm has
# 2.39; bullseye's 2.30 cannot, so setup refuses `verify:` there
MIN_GIT = (2, 34)


def signers_path(host, home: str = "") -> str:
    """The host's allowed-signers file. A sandbox (the demo's, the tests')
    keeps it in its own home, as it keeps everything (docs/hosts.md,
    `sandbox`); every other host in root's /etc/fabops/<app>/."""
    if getattr(host, "sandbox", False):
        return os.path.join(home or host.home, "allowed_signers")
    return f"{SIGNERS_DIR}/{host.app.name}/allowed_signers"


def allowed_signers_text(signers) -> str:
    """The allowed-signers file (ssh-keygen(1), ALLOWED SIGNERS): one line a
    key, its principal the key's comment when it is one word (an e-mail),
    else signerN, limited to git's namespace."""
    lines = ["# Managed by fabops: the keys a deployed commit must be signed by (hosts.yml's verify)"]
    for i, key in enumerate(signers, 1):
        kind, blob, *rest = key.split(None, 2)
        comment = rest[0].strip() if rest else ""
        principal = comment if re.fullmatch(r"[A-Za-z0-9@._+-]{1,100}", comment) else f"signer{i}"
        lines.append(f'{principal} namespaces="git" {kind} {blob}')
    return "\n".join(lines) + "\n"


def unverified_allowed(allow: bool, ref) -> bool:
    """--allow-unverified, which names what it ships: only with --ref (a
    person's explicit commit, never whatever the branch holds)."""
    if allow and ref is None:
        from ..errors import UsageError

        raise UsageError("--allow-unverified needs --ref COMMIT: it ships one commit a person names, never the "
                         "branch's head")
    return bool(allow)


def git_version(text: str) -> Optional[Tuple[int, int]]:
    """`git --version`'s (major, minor), None when it says none."""
    m = re.search(r"git version (\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def too_old(text: str) -> Optional[str]:
    """Why this git cannot check SSH signatures, from `git --version`; None
    when it can."""
    found = git_version(text)
    if found is not None and found >= MIN_GIT:
        return None
    said = f"{found[0]}.{found[1]}" if found else (text.strip() or "no git")
    return (f"git {said} cannot check SSH signatures (git verify-commit with gpg.format=ssh needs git "
            f"{MIN_GIT[0]}.{MIN_GIT[1]} or newer; Debian bullseye has 2.30, bookworm 2.39)")


def signature_words(ok: bool, output: str) -> str:
    """git verify-commit's verdict in one line: its own `Good "git"
    signature for …` line, or why not (no signature at all says nothing)."""
    lines = [ln.strip() for ln in (output or "").splitlines() if ln.strip()]
    if ok:
        good = next((ln for ln in lines if ln.startswith("Good")), lines[0] if lines else "good signature")
        return good.replace('Good "git" signature', "signed")
    if not lines:
        return "no signature"
    said = "; ".join(lines[-2:])
    # a good signature by a key the file does not list: git leads with
    # `Good "git" signature with ED25519 key SHA256:…`, which reads as a
    # pass and, cut, hides its `No principal matched.` (#29's trial), so
    # what it means goes first, with the key's fingerprint to add or refuse
    unlisted = re.search(r"\bkey (SHA256:\S+?);? .*No principal matched", said)
    if unlisted:
        return f"signed by a key not in allowed_signers ({unlisted[1]})"
    return said[:200]
