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

import base64
import os
import re
from typing import List, Optional, Tuple

from ..shell import sh

# Root's directory for the app's allowed signers (setup makes it 0755 root)
SIGNERS_DIR = "/etc/fabops"
# git checks SSH signatures from 2.34 on (ssh-keygen -Y verify): bookworm has
# 2.39; bullseye's 2.30 cannot, so setup refuses `verify:` there
MIN_GIT = (2, 34)
# An OpenPGP key in hosts.yml: `openpgp BASE64 [comment]`, one line as an
# SSH key is (`gpg --export KEYID | base64 -w0`), so it passes the same
# one-line checks as every value there. setup writes these keys, binary, as
# a keyring beside the allowed-signers file, and a root-owned wrapper git
# runs as its gpg program: gpgv against that keyring, no GnuPG home at all
# (docs/security.md, "OpenPGP keys"); git of every Debian release checks
# those signatures, bullseye's 2.30 included.
OPENPGP = "openpgp"
KEYRING = "allowed_signers.gpg"
GPG_PROGRAM = "gpgv-for-git"


def signers_path(host, home: str = "") -> str:
    """The host's allowed-signers file. A sandbox (the demo's, the tests')
    keeps it in its own home, as it keeps everything (docs/hosts.md,
    `sandbox`); every other host in root's /etc/fabops/<app>/."""
    if getattr(host, "sandbox", False):
        return os.path.join(home or host.home, "allowed_signers")
    return f"{SIGNERS_DIR}/{host.app.name}/allowed_signers"


def required_signers(host, home: str = "") -> str:
    """The allowed-signers file that makes this host's runs verify their
    target, or "" when there is none. Root's /etc/fabops/<app>/ file counts
    whatever the settings say: `sandbox: true` in settings a push sent
    must not move the lookup into the deploy user's home, where no file is."""
    root = f"{SIGNERS_DIR}/{host.app.name}/allowed_signers"
    if os.path.isfile(root):
        return root
    own = signers_path(host, home)
    return own if os.path.isfile(own) else ""


def signed_apps() -> Tuple[str, ...]:
    """The root-owned allowed-signers files on this host, any app's: a
    host that has one requires signed commits of what setup set up there."""
    try:
        names = sorted(os.listdir(SIGNERS_DIR))
    except OSError:  # no /etc/fabops: no app here requires them
        return ()
    return tuple(f"{SIGNERS_DIR}/{n}/allowed_signers" for n in names
                 if os.path.isfile(f"{SIGNERS_DIR}/{n}/allowed_signers"))


def beside(signers_file: str, name: str) -> str:
    """The keyring (KEYRING) or git's gpg program (GPG_PROGRAM), in the
    allowed-signers file's own directory."""
    return os.path.join(os.path.dirname(signers_file), name)


def is_openpgp(key: str) -> bool:
    return key.split(None, 1)[0] == OPENPGP


def openpgp_bytes(key: str) -> bytes:
    """An `openpgp BASE64 [comment]` entry's key, as gpg --export wrote it."""
    return base64.b64decode(key.split(None, 2)[1], validate=True)


def openpgp_packets(data: bytes) -> List[Tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 4880 section 4.2: old and new
    headers, no partial lengths, which keys never use). ValueError when the
    bytes are not whole packets."""
    packets, i = [], 0
    while i < len(data):
        head = data[i]
        if not head & 0x80:
            raise ValueError(f"byte {i} starts no OpenPGP packet")
        if head & 0x40:  # new format: the length's first octet says its size
            tag, first, i = head & 0x3F, data[i + 1] if i + 1 < len(data) else 256, i + 2
            if first < 192:
                size = first
            elif first < 224 and i < len(data):
                size, i = ((first - 192) << 8) + data[i] + 192, i + 1
            elif first == 255:
                size, i = int.from_bytes(data[i:i + 4], "big"), i + 4
            else:
                raise ValueError("a packet with a partial or missing length")
        else:  # old format: 1, 2 or 4 length octets (3: indeterminate, never in a key)
            tag, width = (head >> 2) & 0x0F, {0: 1, 1: 2, 2: 4}.get(head & 3)
            if width is None:
                raise ValueError("a packet of indeterminate length")
            size, i = int.from_bytes(data[i + 1:i + 1 + width], "big"), i + 1 + width
        if i + size > len(data):
            raise ValueError("a packet longer than the key")
        packets.append((tag, data[i:i + size]))
        i += size
    return packets


def openpgp_fingerprints(data: bytes) -> List[str]:
    """Each primary key's fingerprint (tag 6, version 4: SHA-1 of 0x99, the
    body's length and the body, RFC 4880 section 12.2), as gpg --show-keys
    prints it. ValueError for another version: gpgv 2.2 (bookworm,
    bullseye) checks version 4 keys only."""
    found = []
    for tag, body in openpgp_packets(data):
        if tag != 6:
            continue
        if body[:1] != b"\x04":
            raise ValueError(f"a version {body[0] if body else '?'} key; gpgv checks version 4 keys")
        # imported here: cron's no-op poll imports this module and hashes
        # nothing (hashlib's OpenSSL load, 2.4 ms; docs/benchmarks.md)
        import hashlib

        found.append(hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper())
    return found


def fingerprint(key: str) -> str:
    """A signer's fingerprint as its own tool prints it: `SHA256:…` of an
    SSH key (ssh-keygen -lf), the 40 hex digits of an OpenPGP key (gpg
    --show-keys); setup shows it before it adds the key."""
    if is_openpgp(key):
        return " ".join(openpgp_fingerprints(openpgp_bytes(key)))
    text = key.split(None, 2)[1]
    try:  # hosts.yml's check (validate.signer_problem) reads its form, not its padding
        blob = base64.b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return f"{key.split()[0]} {text[:24]}…"
    import hashlib  # as openpgp_fingerprints: not on cron's no-op poll

    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def signer_label(key: str) -> str:
    """A signer as setup names it: its fingerprint, and its comment."""
    parts = key.split(None, 2)
    return fingerprint(key) + (f" ({parts[2].strip()})" if len(parts) > 2 and parts[2].strip() else "")


def keyring_bytes(signers) -> bytes:
    """The OpenPGP keyring gpgv reads: the keys one after another, as
    `gpg --dearmor` of each export would write them (empty without one: no
    OpenPGP signature is then good)."""
    return b"".join(openpgp_bytes(k) for k in signers if is_openpgp(k))


def gpg_program_text(keyring: str) -> str:
    """The wrapper git runs as gpg.openpgp.program: gpgv against the
    keyring. git (2.30 and 2.39 alike) runs `PROGRAM --keyid-format=long
    --status-fd=1 --verify SIG -`; gpgv knows neither --keyid-format nor
    --verify (its arguments are the files), so both go, and its status
    lines (GOODSIG, VALIDSIG) reach git on fd 1 as gpg's would. gpgv needs
    no GnuPG home: nothing the deploy user can write is read."""
    return ("#!/bin/sh\n"
            "# git's gpg program for verified commits (docs/security.md, \"OpenPGP keys\"): gpgv, never gpg\n"
            'for a; do shift; case "$a" in --keyid-format=*|--verify) ;; *) set -- "$@" "$a" ;; esac; done\n'
            + sh('exec gpgv --keyring {keyring} "$@"\n', keyring=keyring))


def allowed_signers_text(signers) -> str:
    """The allowed-signers file (ssh-keygen(1), ALLOWED SIGNERS): one line a
    key, its principal the key's comment when it is one word (an e-mail),
    else signerN, limited to git's namespace."""
    # no `Managed by fabops` line of its own: setup puts its MANAGED line
    # (and the app's) above this one, and a file said so twice (#29's trial)
    lines = ["# The keys a deployed commit must be signed by (hosts.yml's verify)"]
    for i, key in enumerate(signers, 1):
        if is_openpgp(key):  # in the keyring beside it (KEYRING)
            continue
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
    signature for …` line (gpgv's `Good signature from …` with the key's
    fingerprint), or why not (no signature at all says nothing)."""
    lines = [ln.strip() for ln in (output or "").splitlines() if ln.strip()]
    # gpgv names the key by its fingerprint: `using EDDSA key 7590C0D5…`
    pgp = re.search(r"using \S+ key ([0-9A-F]{16,40})\b", output or "")
    if ok:
        who = re.search(r'Good signature from "(.*)"', output or "")
        if who:
            return f"signed by {who[1]} (OpenPGP key {pgp[1] if pgp else '?'})"
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
    if pgp and "No public key" in output:  # gpgv's words for a key its keyring lacks
        return f"signed by a key not in allowed_signers ({pgp[1]})"
    return said[:200]
