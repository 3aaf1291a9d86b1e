"""What setup's verified-commits item decides (docs/security.md, "Verified
commits", "New signers"), apart from setup.py, which writes: whether the
host can check every listed key, which listed keys it does not have yet,
and whether a person accepted those.

The item (setup._verify) installs three files in /etc/fabops/<app>/: the
SSH allowed-signers file, the OpenPGP keyring beside it (binary, as
`gpg --dearmor` writes) and the gpgv wrapper git runs as its gpg program
(host/verify.py).
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional

from .shell import Cmd, path as host_path, raw, sh, sudo


def look_cmd() -> Cmd:
    """git's version, then `no gpgv` when gpgv is not on the PATH the
    host's check runs with (host/git.VERIFY_PATH, under env -i)."""
    return raw("git --version 2>/dev/null || true; "
               "(PATH=/usr/sbin:/usr/bin:/sbin:/bin; command -v gpgv) >/dev/null 2>&1 || echo 'no gpgv'")


def unable(said: str, signers) -> Optional[str]:
    """Why this host cannot check every kind of key listed, from look_cmd's
    answer: SSH keys need git 2.34 (bullseye's 2.30 checks OpenPGP
    signatures only, so the SSH keys are named), OpenPGP keys gpgv."""
    from .host.verify import is_openpgp, signer_label, too_old

    ssh = [k for k in signers if not is_openpgp(k)]
    old = too_old(said.splitlines()[0] if said.strip() else "") if ssh else None
    if old:
        named = "; ".join(signer_label(k) for k in ssh)
        return (f"{old}; verify.signers lists {len(ssh)} SSH key{'s' if len(ssh) > 1 else ''} ({named}): "
                "list OpenPGP keys instead (openpgp BASE64, which git 2.30 checks), upgrade git there, or "
                "remove verify: for this host")
    if len(ssh) < len(signers) and "no gpgv" in said:
        return ("gpgv is not installed, and it checks the OpenPGP keys verify.signers lists (Debian: "
                "apt-get install gpgv)")
    return None


def installed(ssh_text: Optional[str], keyring: Optional[bytes]) -> set:
    """The signers the host's files hold now: each SSH key's `TYPE BASE64`
    and each OpenPGP key's fingerprint. A keyring that cannot be read
    holds none: its keys are then new."""
    from .host.verify import openpgp_fingerprints

    found = {" ".join(m.groups()) for m in re.finditer(r'^\S+ namespaces="git" (\S+) (\S+)', ssh_text or "", re.M)}
    try:
        found.update(openpgp_fingerprints(keyring or b""))
    except ValueError:
        pass
    return found


def added_signers(signers, ssh_text: Optional[str], keyring: Optional[bytes], path: str) -> Dict[str, List[str]]:
    """The signers hosts.yml lists that the host's files do not, each as
    signer_label names it, by the file it goes into: an SSH key into the
    allowed-signers file `path`, an OpenPGP key into the keyring beside it
    (#29's trial: the question named allowed_signers for both)."""
    from .host.verify import KEYRING, beside, fingerprint, is_openpgp, signer_label

    have = installed(ssh_text, keyring)
    added: Dict[str, List[str]] = {}
    for key in signers:
        pgp = is_openpgp(key)
        if (fingerprint(key) if pgp else " ".join(key.split()[:2])) not in have:
            added.setdefault(beside(path, KEYRING) if pgp else path, []).append(signer_label(key))
    return added


def added_words(added: Dict[str, List[str]]) -> str:
    """The new signers in one line (a refusal, --check): `KEY; KEY to FILE`
    for each file."""
    return "; ".join(f"{'; '.join(keys)} to {path}" for path, keys in added.items())


def held_words(first: bool) -> str:
    """What a host does while its new signers wait (docs/security.md, "New
    signers"). setup writes host.yml (with `verify:`) before this item, on
    purpose: a refusal must not leave a host that ships unsigned commits
    after a person asked for signed ones, so on a host with no
    allowed-signers file yet nothing can be checked, and all is held."""
    if first:
        return ("until setup installs the signers, this host holds every new commit (host.yml's verify: asks for "
                "the check, and without the allowed-signers file no commit passes it)")
    return "until setup installs them, this host holds the commits only they signed (it checks with the signers it has)"


def question(host: str, added: Dict[str, List[str]]) -> str:
    """setup's question on a terminal, one key a line under the file it goes
    into (#29's trial: one 160-column line); the task wraps each line to
    the terminal (tasks/setup.ask_signers), `[y/N]` after its last."""
    lines = [f"[{host}] hosts.yml's verify: lists signers this host does not have yet; check each fingerprint:"]
    for path, keys in added.items():
        lines.append(f"[{host}]   into {path}:")
        lines += [f"[{host}]     - {key}" for key in keys]
    many = sum(len(keys) for keys in added.values()) > 1
    return "\n".join(lines + [f"[{host}] add {'them' if many else 'it'}?"])


def confirm_problem(run, added: Dict[str, List[str]], first: bool) -> Optional[str]:
    """A signer is added only once a person saw its fingerprint: hosts.yml
    may live in the app's repository, so a push that edits it must not
    widen who can ship (docs/security.md, "New signers"). --check lists
    them; --accept-signers accepts them; a terminal asks; else refused,
    saying what the host does meanwhile (held_words; `first`: it has no
    allowed-signers file yet)."""
    if run.check or run.accept_signers:
        return None
    if run.ask_signers is not None:
        if run.ask_signers(question(run.host.name, added)):
            return None
        return f"not confirmed: nothing written (would add {added_words(added)}); {held_words(first)}"
    return (f"would add {added_words(added)}, and a new signer needs a person's yes: check the fingerprints, then "
            f"run setup on a terminal or with --accept-signers; {held_words(first)}")


def read_binary_cmd(path: str, root: bool) -> Cmd:
    """A binary file (the keyring) as one line of base64, `@@absent` when
    it is not there; root's through sudo."""
    if root:
        return sh("if {test}; then {b64}; else echo '@@absent'; fi",
                  test=sudo(["test", "-e", path]), b64=sudo(["base64", "-w0", path]))
    return sh("if test -e {p}; then base64 -w0 {p}; else echo '@@absent'; fi", p=host_path(path))


def keyring_listing(data: Optional[bytes]) -> str:
    """A keyring as a person reads it in a diff: its keys' fingerprints."""
    from .host.verify import openpgp_fingerprints

    try:
        fprs = openpgp_fingerprints(data or b"")
    except ValueError:
        fprs = ["(not an OpenPGP keyring)"]
    return "".join(f"OpenPGP key {f}\n" for f in fprs)
