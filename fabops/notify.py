"""Tell people: Discord and Slack incoming webhooks (legacy defect 7: failures
were logged and nobody was told).

Webhook URLs never come from hosts.yml (it is committed). They come from the
environment (`FABOPS_DISCORD_WEBHOOK`, `FABOPS_SLACK_WEBHOOK`) or from a
`notify.env` file in the host home that must be mode 0600 (or stricter).
Sending uses the standard library with a short timeout; a failure is
returned as data, logged by the caller, and never fails the operation.
Runs on the host under cron (Python 3.9, no third-party imports).

A message quotes the host (commit subjects, a rule's last line), so it is
text for people, never a command to the chat: its control characters are
stripped (fabops/printable.py), Discord is told to parse no mention
(`allowed_mentions: {parse: []}`: `@everyone`, `@here`, `<@id>` and roles
stay text), and Slack gets `&`, `<` and `>` escaped as its message format
asks, so `<!channel>`, `<!here>`, `<@U123>` and `<http://x|link>` are text.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Dict, List, Optional

from .printable import printable

ENV_KEYS = {"discord": "FABOPS_DISCORD_WEBHOOK", "slack": "FABOPS_SLACK_WEBHOOK"}
TIMEOUT = 5.0

# Each event: its notification's title, and how a person names it in a
# sentence, for a dry run's line (`would record the held port: …`). The
# keys are the JSON's and the code's, never words a reader should have to
# decode (#24). One table, so that no event has a title without its words.
EVENT_TABLE = {
    "deployed": ("✅ deployed", "the deploy"),
    "rolled_back": ("⚠️ rolled back", "the rollback"),
    "aborted": ("⚠️ deploy aborted", "the aborted deploy"),
    "broken": ("🔥 BROKEN, a person is needed", "the BROKEN host"),
    "skipped_bad": ("⚠️ skipping a commit that failed its gate", "the skipped known-bad commit"),
    "skipped_unverified": ("⚠️ holding a commit not signed by an allowed key", "the held unsigned commit"),
    "health_down": ("❌ service down", "the service down"),
    "health_recovered": ("✅ recovered", "the recovery"),
    "health_backoff": ("🔥 restart backoff: stopped restarting", "the restart backoff"),
    "health_held": ("🔥 port held by another process: not restarting", "the held port"),
    "backup_failed": ("❌ backup failed", "the failed backup"),
    "restore_failed": ("❌ restore failed", "the failed restore"),
}
EVENTS = {event: title for event, (title, _) in EVENT_TABLE.items()}  # a notification's title
EVENT_WORDS = {event: words for event, (_, words) in EVENT_TABLE.items()}  # the event in a sentence


@dataclass
class Delivery:
    channel: str
    ok: bool
    detail: str  # never contains the URL

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read_env_file(path: str) -> Dict[str, str]:
    """KEY=value lines of a 0600 file; a file readable by others is ignored
    (and reported by `inv setup --check`), because it holds secrets."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return {}
    values = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    values[k.strip()] = v.strip().strip("'\"")
    except OSError:
        return {}
    return values


def webhooks(home: Optional[str] = None, environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """{channel: url} from the environment, else <home>/notify.env."""
    environ = os.environ if environ is None else environ
    found = {ch: environ[key] for ch, key in ENV_KEYS.items() if environ.get(key)}
    if home:
        from_file = read_env_file(os.path.join(os.path.expanduser(home), "notify.env"))
        for ch, key in ENV_KEYS.items():
            if ch not in found and from_file.get(key):
                found[ch] = from_file[key]
    return found


def sources(home: Optional[str] = None) -> str:
    """Where webhooks() looks, in words: what a dry run names when it finds
    no channel (a person sets one there)."""
    env = " or ".join(ENV_KEYS.values()) + " in the environment"
    return f"{env}, or {os.path.join(home, 'notify.env')} (mode 0600)" if home else env


def format_message(host: str, event: str, message: str, environment: Optional[str] = None) -> str:
    """The message's text: `**[production] find-to-do**: ✅ deployed: ...`;
    a host in an environment is named with it, as a person reading a shared
    channel asks which one first (docs/environments.md)."""
    title = EVENTS.get(event, event)
    who = f"[{environment}] {host}" if environment else host
    text = f"**{who}**: {title}: {message}"
    return text[:1900]  # Discord's limit is 2000 characters


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities (api.slack.com, "Escaping
    text"): a `<` can no longer open `<!channel>` or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(channel: str, text: str) -> bytes:
    text = printable(text, lines=True)
    if channel == "discord":
        return json.dumps({"content": text, "allowed_mentions": {"parse": []}}).encode()
    return json.dumps({"text": slack_escape(text)}).encode()


def send(url: str, channel: str, text: str, timeout: float = TIMEOUT) -> Delivery:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=payload(channel, text), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "fabops"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Delivery(channel, 200 <= resp.status < 300, f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return Delivery(channel, False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Delivery(channel, False, f"not delivered: {reason.__class__.__name__}")


def notify(host: str, event: str, message: str, home: Optional[str] = None,
           environ: Optional[Dict[str, str]] = None, environment: Optional[str] = None) -> List[Delivery]:
    """Send to every configured channel; never raises."""
    out = []
    for channel, url in webhooks(home, environ).items():
        try:
            out.append(send(url, channel, format_message(host, event, message, environment)))
        except Exception as exc:  # noqa: BLE001 - notifying must never fail the operation
            out.append(Delivery(channel, False, f"not delivered: {exc.__class__.__name__}"))
    return out
