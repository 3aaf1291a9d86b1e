"""hosts.yml: load, validate and resolve the inventory into typed settings.

`defaults`, then the host's groups' settings, then the host's own are
deep-merged (maps merge, lists replace; docs/hosts.md, "Groups"). Every
error names the file, the key path (``hosts.find-to-do.services[0].port``) and
the problem, and is a ConfigError (exit 78). The host side reads its own
resolved `host.yml` with this same loader, so this module runs on Python 3.9
and imports only the standard library and yaml.
"""
from __future__ import annotations

import os
import posixpath
from contextlib import contextmanager
from dataclasses import asdict, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import ConfigError, UsageError
from .paths import HostPaths
from .records import Frozen, frozen
from .validate import (
    DEFAULT_BACKUP_SCHEDULE,
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_KEEP,
    DEFAULT_SCHEDULE,
    DEFAULT_THRESHOLDS,
    GROUP_REFUSED,
    HOOK_TIMEOUT_MAX,
    HOOKS,
    SCHEMA,
    SETUP_LOGS,
    Key,
    control_problem,
    env_key_problem,
    env_value_problem,
    header_problem,
    host_name_problem,
    metrics_dir_problem,
    parse_duration,
    script_problem,
    setup_log_problem,
)


@frozen
class Check(Frozen):
    """An HTTP readiness/health check of one service."""

    url: str
    method: str = "GET"
    body: Optional[str] = None
    json: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    expect: int = 200
    timeout: float = 5.0
    # Fail the gate early when the service answers with the same wrong status
    # `fail_count` times in a row over at least `fail_window` seconds: a
    # deterministic error (HTTP 500 on every call), not a slow start.
    fail_count: int = 5
    fail_window: float = 10.0


@frozen
class Service(Frozen):
    name: str
    manager: str = "systemd"  # systemd | process
    command: Optional[str] = None  # process manager only: a shell command line
    workdir: str = "."  # relative to the app directory
    port: Optional[int] = None
    paths: Tuple[str, ...] = ()  # restart only when these changed; () = any change
    check: Optional[Check] = None
    timeout: float = 60.0  # readiness timeout
    settle: float = 2.0  # must stay up this long after it is ready
    # After the gate the host keeps checking for this long; a death or a
    # failed check inside it rolls back (docs/pipeline.md, "Watch").
    watch: float = 30.0
    unit: bool = False  # systemd: `inv setup` installs a unit file from the template


@frozen
class DepRule(Frozen):
    """Run `run` in `cwd` when any of the `when` paths changed."""

    when: Tuple[str, ...]
    run: str
    cwd: str = "."


@frozen
class CleanupRule(Frozen):
    path: str
    glob: str
    older_than: float  # seconds


@frozen
class Dump(Frozen):
    """A backup item whose content is a command's stdout (pg_dump ...):
    shell code the inventory's author writes, run as the deploy user."""

    name: str
    command: str


@frozen
class Keep(Frozen):
    """How many local snapshots to keep, as restic's --keep-daily/weekly/monthly."""

    daily: int = DEFAULT_KEEP["daily"]
    weekly: int = DEFAULT_KEEP["weekly"]
    monthly: int = DEFAULT_KEEP["monthly"]


@frozen
class Repository(Frozen):
    """The off-host repository (restic, host/restic.py; docs/backups.md,
    "Off the host"). The password is in a file, never a value; the URL
    reaches restic in its environment, never its argv."""

    url: str
    password_file: str


@frozen
class Heartbeat(Frozen):
    """The dead-man's switch (docs/monitor.md, "Heartbeat"): cron's update
    and health runs ping `url` when the run converged or found the host
    healthy, and `fail_url` when not. Each URL is a secret (whoever has it
    can forge a ping): host.yml (0600) carries it, as it carries env
    values; every output shows it masked (shown_dict, redact.secret_url)."""

    url: str
    fail_url: Optional[str] = None  # None: url + "/fail" (healthchecks.io's); a push URL with a query names its own
    timeout: float = 5.0


@frozen
class Backup(Frozen):
    """What `backup` copies (docs/backups.md); `.env`, state.json and
    history.jsonl always, without being listed. Paths relative to the app
    directory unless absolute or ~/."""

    files: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()  # fnmatch patterns, matched against a file's name and archive path
    sqlite: Tuple[str, ...] = ()
    dump: Tuple[Dump, ...] = ()
    schedule: Optional[str] = DEFAULT_BACKUP_SCHEDULE  # None: off
    keep: Keep = field(default_factory=Keep)
    repository: Optional[Repository] = None
    # the repository's own keep (docs/backups.md, "Retention"): each count at
    # least keep's, so it may keep more than the host's disk can; None: keep's
    repository_keep: Optional[Keep] = None

    @property
    def offsite_keep(self) -> Keep:
        """The keep rule restic's forget applies over the repository's snapshots."""
        return self.repository_keep or self.keep

    def to_dict(self) -> dict:
        data = asdict(self)
        for k in ("files", "exclude", "sqlite", "dump"):
            data[k] = list(data[k])
        return data


@frozen
class Verify(Frozen):
    """Only commits signed by one of `signers` ship (docs/security.md,
    "Verified commits"): SSH public keys, `TYPE BASE64 [comment]`, that
    setup writes into the root-owned allowed-signers file git verifies
    with (ssh-keygen), and OpenPGP keys, `openpgp BASE64 [comment]`,
    into the keyring beside it that gpgv checks (host/verify.py)."""

    signers: Tuple[str, ...] = ()


@frozen
class Hook(Frozen):
    """One lifecycle hook (docs/pipeline.md, "Hooks"): shell code the
    operator wrote, run as the deploy user in the app directory, killed
    with its process group after `timeout` seconds. Its name is its key in
    Host.hooks (validate.HOOKS)."""

    run: str
    timeout: float = DEFAULT_HOOK_TIMEOUT


@frozen
class App(Frozen):
    path: str
    remote: str = "origin"
    branch: str = "main"
    url: Optional[str] = None  # clone URL, for `setup` on a fresh host

    @property
    def name(self) -> str:
        # normalized once, here, for every use (the unit's name, home, the
        # allowed-signers file in /etc/fabops/<name>/): `~/app/`, `~/app/.`
        # or `~/app//` must all name `app` (docs/security.md, "Verified
        # commits"); validate.hostpath_problem refuses the last two at load
        return posixpath.basename(posixpath.normpath(self.path)) or "app"


def _bare(name: str) -> str:
    return name[: -len(".service")] if name.endswith(".service") else name


def short_service_names(names) -> Dict[str, str]:
    """Names as tables show them at 80 columns: without a `.service` suffix
    and without the leading words every one shares, so
    `voice-meeting-discord-bot.service` and `voice-meeting-python-api.service`
    read `discord-bot` and `python-api` instead of `voice-meeti…` twice.
    JSON keeps the full names; Host.service accepts both."""
    names = list(names)
    bare = [_bare(n) for n in names]
    if len(bare) > 1:
        words = [b.split("-") for b in bare]
        common = 0
        while all(len(w) > common + 1 for w in words) and len({w[common] for w in words}) == 1:
            common += 1
        bare = ["-".join(w[common:]) for w in words]
    if len(set(bare)) != len(bare):  # shortening would merge two names
        return {n: n for n in names}
    return dict(zip(names, bare))


@frozen
class Host(Frozen):
    name: str
    address: str
    app: App
    user: Optional[str] = None  # the deploy user: every run, the units' User=, the sudoers subject
    port: Optional[int] = None
    connection: str = "ssh"  # ssh | local
    # the demo's throwaway host (connection: local only): setup, cron and
    # system-update keep inside its home and never touch this machine's own
    # crontab, ~/.local/bin, /etc or packages. A plain `connection: local`
    # host is this machine for real, set up like any other.
    sandbox: bool = False
    # `inv setup` logs in as this user (full sudo) and does the deploy
    # user's part as that user; None: the deploy user sets itself up
    setup_user: Optional[str] = None
    identity_file: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    services: Tuple[Service, ...] = ()
    deps: Tuple[DepRule, ...] = ()
    logs: Dict[str, str] = field(default_factory=dict)
    thresholds: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    cleanup: Tuple[CleanupRule, ...] = ()
    schedule: Dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SCHEDULE))
    env_file: str = ".env"
    env_template: str = ".env.example"
    backup_dir: str = "~/backup"
    setup_command: Optional[str] = None  # run in the app dir after `reset` (legacy setup-complete.sh)
    home: str = ""  # host home; "" until resolved to ~/.fabops/<app>
    # node_exporter's textfile-collector directory: every host-side run
    # writes its metrics there (host/prom.py); None writes none
    metrics_dir: Optional[str] = None
    # the host's node_exporter as Prometheus scrapes it (HOST:PORT, HOST or
    # :PORT); None: its SSH address at port 9100 (fabops/prometheus_targets.py)
    node_exporter: Optional[str] = None
    backup: Backup = field(default_factory=Backup)
    # lifecycle hooks by name, in validate.HOOKS' order; only those set
    hooks: Dict[str, Hook] = field(default_factory=dict)
    heartbeat: Optional[Heartbeat] = None  # cron's runs ping it (host/heartbeat.py); None: no heartbeat
    verify: Optional[Verify] = None  # the keys a target must be signed by; None: hosts.yml asks for none
    # how long its environment must have run a commit healthy before
    # `promote` sends it on (docs/environments.md, "Promote"); None: 1h
    promote_after: Optional[float] = None
    # the environment group (`environment: true`) the host is in, at most
    # one (docs/environments.md): notifications name it. host.yml carries
    # it as that group, not as a host key (deploy.host_yml)
    environment: Optional[str] = None

    @property
    def is_local(self) -> bool:
        return self.connection == "local"

    @property
    def runs_as(self) -> Optional[str]:
        """The user this host's tasks run as: a `connection: local` host's
        is whoever runs fabops here (no login happens, so `user`, its own
        or lent by `defaults`, is not it: #24's trial showed `ec2-user` for
        a sandbox that ran as root); any other host's is `user` (None:
        ~/.ssh/config's, read at connect). docs/hosts.md, `user`."""
        return local_user() if self.is_local else self.user

    @property
    def paths(self) -> HostPaths:
        """fabops' files on the host, as hosts.yml spells its home (a leading
        ~/ kept: quote with shell.path). The one way to name them
        (fabops/paths.py); a Target's `paths` expands them on this machine."""
        return HostPaths.as_spelled(self.home)

    def service(self, name: str) -> Service:
        """The service a person named by any name the tool prints: its name
        in hosts.yml, the unit name with or without `.service`, or the short
        name tables show (`python-api` for voice-meeting-python-api.service,
        short_service_names). An exact name wins; an unknown one is a usage
        error listing every service by both its names (#24: `hosts` showed
        python-api and `-s python-api` was refused)."""
        labels = short_service_names(s.name for s in self.services)
        for same in (lambda s: s.name == name, lambda s: _bare(s.name) == _bare(name),
                     lambda s: labels[s.name] == name):
            found = [s for s in self.services if same(s)]
            if len(found) == 1:
                return found[0]
        known = ", ".join(s.name + (f" ({labels[s.name]})" if labels[s.name] != s.name else "")
                          for s in self.services) or "none"
        raise UsageError(f"unknown service {name!r} (known: {known})", host=self.name)

    def to_dict(self) -> dict:
        """Plain data for host.yml; `load` reads it back to an equal Host."""
        data = asdict(self)
        data.pop("name")
        data.pop("environment")  # a group's, not a host key: host.yml writes it as the group (deploy.host_yml)
        for svc in data["services"]:
            svc["paths"] = list(svc["paths"])
            if svc["check"] is None:
                del svc["check"]
        for rule in data["deps"]:
            rule["when"] = list(rule["when"])
        data["services"] = list(data["services"])
        data["deps"] = list(data["deps"])
        data["cleanup"] = list(data["cleanup"])
        data["backup"] = self.backup.to_dict()
        if self.heartbeat is not None:  # host.yml says no fail_url rather than `fail_url: null`
            data["heartbeat"] = {k: v for k, v in data["heartbeat"].items() if v is not None}
        if self.verify is not None:
            data["verify"] = {"signers": list(self.verify.signers)}
        if not data["hooks"]:  # none set: host.yml stays as older fabops wrote it
            del data["hooks"]
        if not data["sandbox"]:  # the usual case says nothing (and host.yml stays as older fabops wrote it)
            del data["sandbox"]
        return {k: v for k, v in data.items() if v is not None}

    def shown_dict(self) -> dict:
        """to_dict as output shows it (`hosts --json`): the repository URL
        with its password masked, a check URL's userinfo hidden, and the
        values of headers and env variables whose names say secret as
        `***` (fabops/redact.py; docs/security.md). host.yml keeps
        to_dict's, which restic and the checks need whole."""
        from .redact import hidden_userinfo, redacted, redacted_url, secret_name, secret_url

        data = {"environment": self.environment, **self.to_dict()}  # first: what a person looks for
        data["user"] = self.runs_as  # a local host runs as this machine's user, whatever hosts.yml says
        if data.get("app", {}).get("url"):  # a clone URL may carry a token, often as its user part
            data["app"]["url"] = hidden_userinfo(data["app"]["url"])
        repo = data["backup"].get("repository")
        if repo:
            repo["url"] = redacted_url(repo["url"])
        for svc in data.get("services") or []:
            check = svc.get("check")
            if check:
                check["url"] = hidden_userinfo(check["url"])
                check["headers"] = {k: "***" if secret_name(k) else v for k, v in (check.get("headers") or {}).items()}
        if data.get("heartbeat"):  # the URL is the secret: its path is shown as ***
            data["heartbeat"] = {k: secret_url(v) if k.endswith("url") else v for k, v in data["heartbeat"].items()}
        if data.get("env"):
            # a value under an ordinary name may still be a URL with a password
            data["env"] = {k: "***" if secret_name(k) else redacted(v) for k, v in data["env"].items()}
        return data


def local_user() -> str:
    """This process's user (its effective uid's name, as `id -un` and
    `ping` say it; the number when the uid has no name)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


@frozen
class Inventory(Frozen):
    path: str
    hosts: Dict[str, Host]
    groups: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    default: Optional[str] = None
    known_hosts: Optional[str] = None  # absolute path of an extra known_hosts file
    # host -> {key path: "defaults" | "group NAME" | "host"}: which layer of
    # hosts.yml gave each value the host has (`hosts --show`); a path not
    # here is fabops' own default
    origins: Dict[str, Dict[str, str]] = field(default_factory=dict)
    # group -> the key paths its settings set (a plain-list group: none), and
    # the groups marked `environment: true`: `hosts --json` (docs/json.md)
    group_keys: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    environments: Tuple[str, ...] = ()

    def names(self) -> List[str]:
        return list(self.hosts) + [g for g in self.groups if g not in self.hosts]

    def settings(self, host: Host) -> List[Tuple[str, Any, str]]:
        """(key path, value, where it came from) of every setting `host`
        resolves to, as `hosts --show` shows them: shown_dict's values
        (secrets masked), each from "defaults", "group NAME" or "host" as
        the merge took it (docs/hosts.md, "Groups"), or "built-in" where
        hosts.yml does not set it. A list is set whole, so its items'
        values come from where the list did. A schedule turned off is a
        row too (None), though Host.schedule leaves it out: where it was
        turned off is what a person asks."""
        origins = self.origins.get(host.name, {})
        shown = host.shown_dict()
        shown["schedule"] = {k: host.schedule.get(k) for k in DEFAULT_SCHEDULE}
        rows = []
        for path, value in _shown_leaves(shown):
            at = path
            while at and at not in origins:
                at = at[: max(at.rfind("."), at.rfind("["), 0)]
            # a local host runs as whoever runs fabops here, whatever hosts.yml
            # lends it (Host.runs_as; docs/hosts.md, `user`): that is where its value came from
            where = "local user" if path == "user" and host.is_local else origins.get(at, "built-in")
            rows.append((path, value, where))
        return rows

    def _known(self) -> str:
        """What -H accepts, for an error to list: the names, and `all`
        (every host; completion offers it too) unless a host or group has
        taken that name."""
        names = self.names()
        return ", ".join(names + ([] if "all" in names else ["all"]))

    def select(self, spec: Optional[str]) -> List[Host]:
        """Resolve `-H a,b,group,web*` (or, with no -H at all, the default)
        to hosts, in order, once each.

        A blank -H is a usage error, never the default: `-H "$TARGET"` with
        TARGET unset must not mean production. Patterns (`*`, `?`, `[...]`)
        match host and group names; one that matches nothing is an error."""
        if spec is None:
            if self.default is not None:
                spec = self.default
            elif len(self.hosts) == 1:
                spec = next(iter(self.hosts))
            else:
                raise UsageError(
                    "no host given and hosts.yml sets no `default`; use -H NAME "
                    f"(known: {self._known()})"
                )
        elif not str(spec).strip():
            raise UsageError(f"-H is empty; name a host, group or pattern (known: {self._known()})")
        chosen: List[Host] = []
        for raw in str(spec).split(","):
            name = raw.strip()
            if not name:
                raise UsageError(f"-H {spec!r} has an empty entry; name a host, group or pattern")
            for member in self._members(name):
                if all(h.name != member for h in chosen):
                    chosen.append(self.hosts[member])
        return chosen

    def _members(self, name: str) -> List[str]:
        if name in self.hosts:
            return [name]
        if name in self.groups:
            return list(self.groups[name])
        if name == "all":
            return list(self.hosts)
        if any(ch in name for ch in "*?["):
            import fnmatch

            members: List[str] = []
            for match in fnmatch.filter(self.names(), name):
                members.extend(m for m in self._members(match) if m not in members)
            if not members:
                raise UsageError(f"-H pattern {name!r} matched nothing; known: {self._known()}")
            return members
        hint = _close(name, self.names() + ["all"])
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(f"unknown host or group {name!r}{did}; known: {self._known()}")


# --------------------------------------------------------------------------
# Loading


def find_inventory(explicit: Optional[str] = None, start: Optional[str] = None) -> str:
    """The inventory path: the flag, then $FABOPS_INVENTORY, then hosts.yml in
    the current directory or the nearest parent (as `inv` finds tasks.py)."""
    if explicit:
        return explicit
    env = os.environ.get("FABOPS_INVENTORY")
    if env:
        return env
    here = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(here, "hosts.yml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return os.path.join(os.path.abspath(start or os.getcwd()), "hosts.yml")
        here = parent


def load(path: Optional[str] = None) -> Inventory:
    """Read and validate an inventory file. Raises ConfigError."""
    path, text = read(path)
    return loads(text, path)


def read(path: Optional[str] = None) -> Tuple[str, str]:
    """(the inventory file's path, its text). Raises ConfigError."""
    path = find_inventory(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return path, fh.read()
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found (use --inventory or FABOPS_INVENTORY)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot be read: {exc}") from None


def loads(text: str, path: str = "hosts.yml") -> Inventory:
    return from_data(parse_yaml(text, path), path)


def from_data(data: Any, path: str = "hosts.yml") -> Inventory:
    """Validate an inventory's data as YAML gave it (or the cron fast path's
    JSON copy of it, host/fastpath.py)."""
    return _Validator(path).inventory(data)


def parse_yaml(text: str, path: str) -> Any:
    """hosts.yml's data, read with libyaml's parser where PyYAML has it
    (yaml.CSafeLoader: about 10 times faster than PyYAML's own, and cron
    reads host.yml every poll); a file it refuses is read again with
    PyYAML's SafeLoader, so a problem is told in the same words either way."""
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return _parse_with(fast, text, path)
        except ConfigError:
            pass
    return _parse_with(yaml.SafeLoader, text, path)


def _parse_with(base, text: str, path: str) -> Any:
    import yaml

    class Loader(base):
        """`base` refusing duplicate keys: PyYAML silently keeps the
        last one, which hides exactly the kind of typo validation is for."""

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                dup = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        data = yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, "", f"not valid YAML{where}: {problem}") from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise ConfigError(path, "", f"not valid YAML: {exc.__class__.__name__}") from None
    if data is None:
        raise ConfigError(path, "", "is empty; it needs at least a `hosts:` mapping")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """Deep merge: maps merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def leaves(data: dict, prefix: str = ""):
    """(key path, value) of every value `deep_merge` treats as one: maps are
    walked, anything else (a list too) is one value."""
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from leaves(value, path)
        else:
            yield path, value


def _shown_leaves(data: Any, prefix: str = ""):
    """leaves, with a list of mappings (services) walked item by item, so
    each line `hosts --show` prints stays short."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _shown_leaves(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(data, list) and any(isinstance(v, dict) for v in data):
        for i, value in enumerate(data):
            yield from _shown_leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, data


def _layered(layers: List[Tuple[str, dict]]) -> Tuple[dict, Dict[str, str]]:
    """The layers merged in order (the later wins, `deep_merge`'s one rule),
    and which layer gave each value."""
    merged: dict = {}
    origins: Dict[str, str] = {}
    for label, data in layers:
        merged = deep_merge(merged, data)
        origins.update((path, label) for path, _ in leaves(data))
    return merged, origins


def _disagreements(host: str, groups: List[Tuple[str, dict]], own: dict,
                   found: Dict[Tuple[str, ...], List[str]]) -> None:
    """Note in `found` each value two of the host's groups set differently
    ((first group, second group, key path, the two values) -> hosts):
    without group_order neither may win (docs/hosts.md, "Groups"). A key
    the host sets itself (`own`) is no conflict: its value wins over both
    groups, so neither group's value applies."""
    mine = {path for path, _ in leaves(own)}
    for i, (first, one) in enumerate(groups):
        values = dict(leaves(one))
        for second, other in groups[i + 1:]:
            for path, value in leaves(other):
                if path in values and values[path] != value and not _overridden(path, mine):
                    short = len(_written(value)) <= 30 and len(_written(values[path])) <= 30  # services are not
                    pair = (f"{_written(value)} here, {_written(values[path])} in groups.{first}: "
                            if short and _may_show(path) else "")
                    found.setdefault((first, second, path, pair), []).append(host)


# Where a value may be a secret, whatever its key's name: an env value (a
# database URL with its password), the heartbeat's URLs (the URL is the
# secret) and a backup repository's URL and password file.
_SECRET_SECTIONS = ("env.", "heartbeat.", "backup.repository.")


def _may_show(path: str) -> bool:
    """Whether a group conflict's message may quote the two values at `path`
    (docs/security.md: no secret in any output): never where a value may be
    a secret, nor under a key whose name says it is one (a check's
    Authorization header)."""
    from .redact import secret_name

    return not path.startswith(_SECRET_SECTIONS) and not any(secret_name(part) for part in path.split("."))


def _overridden(path: str, own: set) -> bool:
    """Whether the host's own leaves (`own`) set `path` or a whole map or
    list above it (`deep_merge`: the host's value replaces what the groups set)."""
    parts = path.split(".")
    return any(".".join(parts[:n]) in own for n in range(1, len(parts) + 1))


def _written(value: Any) -> str:
    """A value as hosts.yml most likely wrote it, for a message: a number
    is read as a float (_Validator.number), so `70` comes back 70.0; show 70."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)



def _typename(value: Any) -> str:
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "a mapping", type(None): "empty",
    }.get(type(value), type(value).__name__)


class _Validator:
    """Turns raw YAML data into typed settings, or raises ConfigError naming
    the key path. Sections are normalized where they are written (so an error
    in `defaults` is reported under `defaults.…`), then merged, then checked
    for required values. Which keys a section takes and how each is read is
    the table validate.SCHEMA; the methods here are its readers."""

    def __init__(self, path: str):
        self.path = path
        # Every problem in the file is reported, not only the first: each
        # host, group and host key is checked on its own (`collecting`), and
        # unknown keys are noted without stopping.
        self.problems: List[Tuple[str, str]] = []

    def fail(self, key: str, problem: str):
        raise ConfigError(self.path, key, problem)

    def note(self, key: str, problem: str) -> None:
        self.problems.append((key, problem))

    @contextmanager
    def collecting(self):
        try:
            yield
        except ConfigError as exc:
            self.note(exc.key, exc.problem)

    def raise_problems(self) -> None:
        if self.problems:
            raise ConfigError.many(self.path, self.problems)

    # -- primitives ---------------------------------------------------------
    def mapping(self, value: Any, key: str, allowed: Optional[Tuple[str, ...]] = None) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, not {_typename(value)}")
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"keys must be strings, got {k!r}")
            problem = control_problem(k)
            if problem:
                self.fail(f"{key}.{k!r}" if key else repr(k), f"key {problem}")
        if allowed is None:
            return value
        for k in value:
            if k not in allowed:
                self.note(f"{key}.{k}" if key else k, unknown_key(k, allowed))
        return {k: v for k, v in value.items() if k in allowed}

    def string(self, value: Any, key: str, check: Optional[Callable[[str], Optional[str]]] = None) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(key, f"must be a string, not {_typename(value)}")
        value = str(value)
        problem = control_problem(value)
        if problem:
            self.fail(key, problem)
        if check is not None:
            problem = check(value)
            if problem:
                # a URL's password is never quoted back (a repository's: docs/backups.md);
                # imported only here and in shown_dict: cron's lines load this module every poll
                from .redact import hidden_userinfo, redacted_url, secret_name

                shown = ("***" if secret_name(key.rpartition(".")[2]) or ".heartbeat." in key else
                         hidden_userinfo(value) if key.endswith("check.url") else redacted_url(value))
                self.fail(key, f"{shown!r} {problem}" if len(value) < 80 else problem)
        return value

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be a whole number, not {_typename(value)}")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range {lo}-{hi}")
        return value

    def number(self, value: Any, key: str, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be a number, not {_typename(value)}")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range {lo:g}-{hi:g}")
        return float(value)

    def choice(self, value: Any, key: str, options: Tuple[str, ...]) -> str:
        value = self.string(value, key)
        if value not in options:
            self.fail(key, f"{value!r} is not one of: {', '.join(options)}")
        return value

    def duration(self, value: Any, key: str) -> float:
        if isinstance(value, str):
            self.string(value, key)  # the one-line rule, before parsing
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            raise  # unreachable; keeps type checkers calm

    def strlist(self, value: Any, key: str, check=None) -> Tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.fail(key, f"must be a list, not {_typename(value)}")
        return tuple(self.string(v, f"{key}[{i}]", check) for i, v in enumerate(value))

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return value

    def any(self, value: Any, key: str) -> Any:
        """Free-form data (a check's `json`): its strings, keys included,
        follow the same one-line rule as every other value."""
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and control_problem(k):
                    self.fail(f"{key}.{k!r}", f"key {control_problem(k)}")
                self.any(v, f"{key}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.any(v, f"{key}[{i}]")
        elif isinstance(value, str) and control_problem(value):
            self.fail(key, control_problem(value) or "")
        return value

    def method(self, value: Any, key: str, options: Tuple[str, ...]) -> str:
        return self.choice(str(value).upper(), key, options)

    def read(self, spec: Key, value: Any, key: str) -> Any:
        """One value, read as its SCHEMA entry says."""
        if spec.kind in ("integer", "number"):
            return getattr(self, spec.kind)(value, key, *spec.bounds)
        if spec.kind in ("choice", "method"):
            return getattr(self, spec.kind)(value, key, spec.options)
        if spec.kind in ("string", "strlist"):
            return getattr(self, spec.kind)(value, key, spec.check)
        if spec.kind in SCHEMA and not hasattr(self, spec.kind):  # a plain mapping section (backup, keep, ...)
            return self.section(spec.kind, value, key)
        return getattr(self, spec.kind)(value, key)

    def section(self, name: str, raw: Any, key: str) -> dict:
        """A mapping read key by key with SCHEMA[name]: unknown keys noted,
        every problem in an optional key noted (the rest still read), a
        missing or wrong required key stops the section."""
        table = SCHEMA[name]
        raw = self.mapping(raw, key, tuple(table))
        for k, spec in table.items():
            if spec.required and raw.get(k) is None:
                self.fail(f"{key}.{k}", "is required")
        out: Dict[str, Any] = {}
        for k, v in raw.items():
            spec, kk = table[k], f"{key}.{k}"
            if spec.off and v in (None, "off", False):
                out[k] = None
            elif v is None or (spec.blank and v == ""):
                continue  # the default
            elif spec.required:
                out[k] = self.read(spec, v, kk)
            else:
                with self.collecting():
                    out[k] = self.read(spec, v, kk)
        return out

    def items(self, value: Any, key: str) -> List[Tuple[str, Any]]:
        if not isinstance(value, list):
            self.fail(key, f"must be a list, not {_typename(value)}")
        return [(f"{key}[{i}]", v) for i, v in enumerate(value)]

    # -- sections -----------------------------------------------------------
    def inventory(self, data: Any) -> Inventory:
        """The validated Inventory, or one ConfigError naming every problem."""
        try:
            inventory = self._inventory(data)
        except ConfigError as exc:  # a problem that stops the whole file
            self.note(exc.key, exc.problem)
        self.raise_problems()
        return inventory

    def _inventory(self, data: Any) -> Inventory:
        top = self.mapping(data, "", tuple(SCHEMA["top"]))
        defaults: dict = {}
        with self.collecting():
            defaults = self.host_fields(top.get("defaults") or {}, "defaults")
        if "hosts" not in top:
            self.fail("hosts", "is required: a mapping of host names to their settings")
        raw_hosts = self.mapping(top["hosts"], "hosts")
        if not raw_hosts:
            self.fail("hosts", "must name at least one host")
        # the hosts need their groups' settings, but the problems are told
        # in the file's order: the hosts' first, as before groups had settings
        before, self.problems = self.problems, []
        groups, settings = self.groups(top.get("groups") or {}, raw_hosts)
        # `environment: true` marks the group, it is no setting to merge (docs/environments.md)
        environments = [g for g in groups if settings.get(g, {}).pop("environment", False)]
        order = self.group_order(top.get("group_order"), groups, settings)
        later, self.problems = self.problems, before
        layers = {g: settings[g] for g in order}
        hosts, origins = self.hosts(raw_hosts, defaults, groups, layers, top.get("group_order") is None)
        self.environments(hosts, origins, groups, environments)
        self.problems.extend(later)
        default = None
        if top.get("default") is not None:
            with self.collecting():
                default = self.string(top["default"], "default")
                for part in default.split(","):
                    if part.strip() not in raw_hosts and part.strip() not in groups:
                        self.fail("default", f"unknown host or group {part.strip()!r}")
        known_hosts = None
        if top.get("known_hosts") is not None:
            with self.collecting():
                known_hosts = self.string(top["known_hosts"], "known_hosts")
                base = os.path.dirname(os.path.abspath(self.path))
                known_hosts = os.path.join(base, os.path.expanduser(known_hosts))
        return Inventory(self.path, hosts, groups, default, known_hosts, origins,
                         {g: tuple(path for path, _ in leaves(settings.get(g, {}))) for g in groups},
                         tuple(environments))

    def hosts(self, raw_hosts: dict, defaults: dict, groups: Dict[str, Tuple[str, ...]], layers: Dict[str, dict],
              strict: bool) -> Tuple[Dict[str, Host], Dict[str, Dict[str, str]]]:
        """Each host merged from defaults, its groups' settings (`layers`, in
        their order) and its own, and which of them gave each value. When
        `strict` (no group_order) two groups that set a value differently
        for one host are a problem naming both."""
        hosts: Dict[str, Host] = {}
        origins: Dict[str, Dict[str, str]] = {}
        conflicts: Dict[Tuple[str, ...], List[str]] = {}
        for name, raw in raw_hosts.items():
            key = f"hosts.{name}"
            with self.collecting():
                self.string(name, key, host_name_problem)
                own = self.host_fields(raw or {}, key)
                mine = [g for g in layers if name in groups[g]]
                if strict:
                    _disagreements(name, [(g, layers[g]) for g in mine], own, conflicts)
                merged, origins[name] = _layered([("defaults", defaults), *((f"group {g}", layers[g]) for g in mine),
                                                  ("host", own)])
                hosts[name] = self.finish_host(name, merged, key)
        self.problems.extend(
            (f"groups.{second}.{path}", f"{shown}{', '.join(names)} {'is' if len(names) == 1 else 'are'} in groups "
             f"{first} and {second}, which set it differently; set it in one of them, or list the groups in a "
             "top-level group_order (the last one wins)")
            for (first, second, path, shown), names in conflicts.items())
        return hosts, origins

    def environments(self, hosts: Dict[str, Host], origins: Dict[str, Dict[str, str]],
                     groups: Dict[str, Tuple[str, ...]], environments: List[str]) -> None:
        """Give each host its environment: the one `environment: true` group
        it is in. Two are a problem naming both: staging's and production's
        settings, branch and notifications would both claim the host
        (docs/environments.md)."""
        for name in hosts:
            mine = [g for g in environments if name in groups[g]]
            if len(mine) > 1:
                self.note(f"groups.{mine[1]}.hosts", f"{name} is in environments {mine[0]} and {mine[1]}: a host "
                          "is in at most one environment; take it out of one of them")
            elif mine:
                hosts[name] = replace(hosts[name], environment=mine[0])
                origins.setdefault(name, {})["environment"] = f"group {mine[0]}"

    def groups(self, raw: Any, hosts: dict) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, dict]]:
        """Each group's members, and the settings of those written as a
        mapping (a plain list sets nothing: {})."""
        groups: Dict[str, Tuple[str, ...]] = {}
        settings: Dict[str, dict] = {}
        with self.collecting():
            for gname, members in self.mapping(raw, "groups").items():
                with self.collecting():
                    groups[gname], settings[gname] = self.group(gname, members, hosts)
        return groups, settings

    def group(self, gname: str, raw: Any, hosts: dict) -> Tuple[Tuple[str, ...], dict]:
        gkey = f"groups.{gname}"
        self.string(gname, gkey, host_name_problem)
        if gname in hosts:
            self.fail(gkey, "has the same name as a host")
        settings: dict = {}
        if isinstance(raw, dict):  # `{hosts: [...], app: {branch: develop}, ...}`
            for k in set(raw) & set(GROUP_REFUSED):
                self.note(f"{gkey}.{k}", f"a group may not set {k}: it {GROUP_REFUSED[k]}")
            settings = self.section("group", {k: v for k, v in raw.items() if k not in GROUP_REFUSED}, gkey)
            names, mkey = settings.pop("hosts"), f"{gkey}.hosts"
        else:  # `[web1, web2]`: members only, as before groups had settings
            names, mkey = self.strlist(raw, gkey), gkey
        for i, member in enumerate(names):
            if member not in hosts:
                self.note(f"{mkey}[{i}]", f"unknown host {member!r}; known: {', '.join(hosts)}")
        return names, settings

    def group_order(self, raw: Any, groups: dict, settings: Dict[str, dict]) -> List[str]:
        """The order groups' settings merge in: `group_order` when given (it
        names every group that sets something, the last one wins), else
        hosts.yml's order of the groups that set something."""
        setting = [g for g in groups if settings.get(g)]
        if raw is None:
            return setting
        order: List[str] = []
        with self.collecting():
            for i, gname in enumerate(self.strlist(raw, "group_order")):
                if gname not in groups:
                    self.note(f"group_order[{i}]", f"unknown group {gname!r}; known: {', '.join(groups) or 'none'}")
                elif gname in order:
                    self.note(f"group_order[{i}]", f"names {gname!r} twice")
                else:
                    order.append(gname)
        for gname in setting:
            if gname not in order:
                self.note("group_order", f"does not name group {gname!r}, which sets keys: list every such group")
        return [g for g in order if settings.get(g)] + [g for g in setting if g not in order]

    def host_fields(self, raw: Any, key: str) -> dict:
        """Type-check the keys present in one host (or `defaults`) mapping."""
        return self.section("host", raw, key)

    def app(self, raw: Any, key: str) -> dict:
        return self.section("app", raw, key)

    def logs(self, raw: Any, key: str) -> dict:
        return self.section("logs", raw, key)

    def thresholds(self, raw: Any, key: str) -> dict:
        return self.section("thresholds", raw, key)

    def schedule(self, raw: Any, key: str) -> dict:
        return self.section("schedule", raw, key)

    def dump(self, raw: Any, key: str) -> list:
        dumps = [self.section("dump[]", dv, dk) for dk, dv in self.items(raw, key)]
        names = [d["name"] for d in dumps]
        for i, name in enumerate(names):
            if name in names[:i]:
                self.fail(f"{key}[{i}].name", f"duplicate dump {name!r}: each names its own file")
        return dumps

    def backup_settings(self, d: dict, key: str, connection: str) -> Backup:
        """The host's `backup:` section, merged from defaults, as typed settings."""
        d = dict(d)
        repo = d.pop("repository", None)
        if repo is not None:
            repo = Repository(repo["url"], self.host_path(repo["password_file"], f"{key}.repository.password_file",
                                                          connection))
        keep = Keep(**{**DEFAULT_KEEP, **(d.get("keep") or {})})
        return Backup(**{k: tuple(v) for k, v in d.items() if k in ("files", "exclude", "sqlite")},
                      dump=tuple(Dump(**x) for x in d.get("dump") or ()),
                      schedule=d.get("schedule", DEFAULT_BACKUP_SCHEDULE), keep=keep, repository=repo,
                      repository_keep=self.repository_keep(keep, d.get("repository_keep"), key))

    def repository_keep(self, keep: Keep, raw: Optional[dict], key: str) -> Optional[Keep]:
        """`backup.repository_keep`: its counts over keep's (a count not
        given is keep's). None when not set. A count below keep's is
        refused: the repository would forget a snapshot the host still
        has, and the next run's catch-up would upload it again, every run."""
        if raw is None:
            return None
        out = Keep(**{**keep.__dict__, **raw})
        for name, count in out.__dict__.items():
            if count < getattr(keep, name):
                self.fail(f"{key}.repository_keep.{name}",
                          f"{count} is fewer than keep.{name} ({getattr(keep, name)}): the repository keeps at least "
                          "what the host keeps (it would forget snapshots the host still has, and each run would "
                          "upload them again)")
        return out

    def env(self, raw: Any, key: str) -> dict:
        env = self.mapping(raw, key)
        return {self.string(ek, f"{key}.{ek}", env_key_problem): self.string(ev, f"{key}.{ek}", env_value_problem)
                for ek, ev in env.items()}

    def headers(self, raw: Any, key: str) -> dict:
        hdrs = self.mapping(raw, key)
        return {self.string(hk, key, header_problem): self.string(hv, f"{key}.{hk}", header_problem)
                for hk, hv in hdrs.items()}

    def hooks(self, raw: Any, key: str) -> dict:
        return self.section("hooks", raw, key)

    def hook(self, raw: Any, key: str) -> dict:
        """One hook: its script alone, or {run, timeout} (docs/hosts.md, `hooks`)."""
        if isinstance(raw, str):
            return {"run": self.script(raw, key)}
        if not isinstance(raw, dict):
            self.fail(key, f"must be shell code or a mapping {{run, timeout}}, not {_typename(raw)}")
        d = self.section("hook", raw, key)
        timeout = d.get("timeout")
        if timeout is not None and not 1 <= timeout <= HOOK_TIMEOUT_MAX:
            self.fail(f"{key}.timeout", f"{timeout:g}s is out of range 1s-{HOOK_TIMEOUT_MAX:g}s: a hook holds the "
                      "host's lock while it runs")
        return d

    def script(self, value: Any, key: str) -> str:
        """A hook's shell code: lines of printable text (validate.script_problem)."""
        if not isinstance(value, str):
            self.fail(key, f"must be shell code (a string), not {_typename(value)}")
        problem = script_problem(value)
        if problem:
            self.fail(key, problem)
        return value

    def services(self, raw: Any, key: str) -> list:
        services = [self.service(sv, sk) for sk, sv in self.items(raw, key)]
        seen: Dict[str, str] = {}
        for i, svc in enumerate(services):
            if svc["name"] in seen:
                self.fail(f"{key}[{i}].name", f"duplicate service {svc['name']!r}")
            seen[svc["name"]] = key
        return services

    def deps(self, raw: Any, key: str) -> list:
        return [self.dep(dv, dk) for dk, dv in self.items(raw, key)]

    def cleanup(self, raw: Any, key: str) -> list:
        return [self.cleanup_rule(cv, ck) for ck, cv in self.items(raw, key)]

    def service(self, raw: Any, key: str) -> dict:
        """One service; every problem in it is noted, not only the first.
        The rules between keys are here; each key's own, in SCHEMA."""
        out = self.section("services[]", raw, key)
        out.setdefault("manager", "systemd")
        raw = raw if isinstance(raw, dict) else {}
        if raw.get("command") is None and out["manager"] == "process":
            self.note(f"{key}.command", "is required for manager: process")
        if out.get("unit") and not raw.get("command"):
            self.note(f"{key}.command", "is required for unit: true (the unit's launcher runs it)")
            del out["unit"]
        return out

    def check(self, raw: Any, key: str) -> Check:
        if isinstance(raw, dict) and raw.get("body") is not None and raw.get("json") is not None:
            self.fail(key, "give either `body` or `json`, not both")
        return Check(**self.section("check", raw, key))

    def dep(self, raw: Any, key: str) -> DepRule:
        d = self.section("deps[]", raw, key)
        if not d["when"]:
            self.fail(f"{key}.when", "must list at least one path")
        return DepRule(d["when"], d["run"], d.get("cwd", "."))

    def cleanup_rule(self, raw: Any, key: str) -> CleanupRule:
        d = self.section("cleanup[]", raw, key)
        return CleanupRule(d["path"], d["glob"], d["older_than"])

    def host_path(self, path: str, key: str, connection: str) -> str:
        """Absolute or ~/ paths pass; relative ones are resolved against the
        inventory's directory for local hosts and refused for ssh hosts."""
        if path.startswith("/") or path == "~" or path.startswith("~/"):
            return path
        if connection == "local":
            return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self.path)), path))
        self.fail(key, f"{path!r} must be absolute or start with ~/ (relative paths are only for connection: local)")
        raise AssertionError  # unreachable

    def finish_host(self, name: str, d: dict, key: str) -> Host:
        connection = d.get("connection", "ssh")
        if d.get("sandbox") and connection != "local":
            self.fail(f"{key}.sandbox", "needs `connection: local`: a sandbox is a directory on this machine")
        if d.get("setup_user") and not d.get("user"):
            self.fail(f"{key}.setup_user", "needs `user` too: the deploy user that setup sets up")
        app = d.get("app") or {}
        if "path" not in app:
            self.fail(f"{key}.app.path", "is required (set it here or in defaults.app)")
        schedule = dict(DEFAULT_SCHEDULE)
        schedule.update(d.get("schedule") or {})
        thresholds = dict(DEFAULT_THRESHOLDS)
        thresholds.update(d.get("thresholds") or {})
        services = tuple(
            Service(**{**s, "paths": tuple(s.get("paths", ()))}) for s in d.get("services") or ()
        )
        app["path"] = self.host_path(app["path"], f"{key}.app.path", connection)
        app_obj = App(**app)
        home = self.host_path(d.get("home") or f"~/.fabops/{app_obj.name}", f"{key}.home", connection)
        backup_dir = self.host_path(d.get("backup_dir", "~/backup"), f"{key}.backup_dir", connection)
        metrics_dir = self.host_path(d["metrics_dir"], f"{key}.metrics_dir", connection) if d.get("metrics_dir") \
            else None
        logs = {k: self.host_path(v, f"{key}.logs.{k}", connection) for k, v in (d.get("logs") or {}).items()}
        for k in SETUP_LOGS:
            # an ssh host's setup makes these with sudo; a local host's are the operator's own files
            if connection == "ssh" and k in logs and setup_log_problem(logs[k]):
                self.fail(f"{key}.logs.{k}", f"{logs[k]!r} {setup_log_problem(logs[k])}")
        if connection == "ssh" and metrics_dir and metrics_dir_problem(metrics_dir):  # setup makes it too: as logs
            self.fail(f"{key}.metrics_dir", f"{metrics_dir!r} {metrics_dir_problem(metrics_dir)}")
        cleanup = tuple(
            CleanupRule(self.host_path(r.path, f"{key}.cleanup[{i}].path", connection), r.glob, r.older_than)
            for i, r in enumerate(d.get("cleanup") or ())
        )
        return Host(
            name=name,
            address=d.get("address", name),
            app=app_obj,
            user=d.get("user"), setup_user=d.get("setup_user"),
            port=d.get("port"), connection=connection,
            sandbox=bool(d.get("sandbox", False)),
            identity_file=d.get("identity_file"),
            env=dict(d.get("env") or {}),
            services=services,
            deps=tuple(d.get("deps") or ()),
            logs=logs,
            thresholds=thresholds,
            cleanup=cleanup,
            schedule={k: v for k, v in schedule.items() if v},
            env_file=d.get("env_file", ".env"), env_template=d.get("env_template", ".env.example"),
            backup_dir=backup_dir,
            setup_command=d.get("setup_command"),
            home=home, metrics_dir=metrics_dir,
            promote_after=d.get("promote_after"),
            node_exporter=d.get("node_exporter"),
            backup=self.backup_settings(d.get("backup") or {}, f"{key}.backup", connection),
            hooks={n: Hook(h["run"], h.get("timeout", DEFAULT_HOOK_TIMEOUT))
                   for n in HOOKS for h in [(d.get("hooks") or {}).get(n)] if h},
            heartbeat=self.heartbeat_settings(d.get("heartbeat"), f"{key}.heartbeat"),
            verify=self.verify_settings(d.get("verify"), f"{key}.verify"),
        )

    def verify_settings(self, d: Optional[dict], key: str) -> Optional[Verify]:
        """The host's `verify:` (docs/security.md, "Verified commits"); None
        without one. An empty list of signers would hold every commit."""
        if not d:
            return None
        if not d.get("signers"):
            self.fail(f"{key}.signers",
                      "must list at least one SSH or OpenPGP public key (none would hold every commit)")
        return Verify(tuple(d["signers"]))

    def heartbeat_settings(self, d: Optional[dict], key: str) -> Optional[Heartbeat]:
        """The host's `heartbeat:` merged (docs/monitor.md, "Heartbeat"); None
        without one or with `url: off`. A URL with a query string (Uptime
        Kuma's push) needs its own fail_url: `/fail` would land in the query."""
        if not d:
            return None
        if "url" not in d:
            self.fail(f"{key}.url", "is required (or `off`): the URL cron's runs ping")
        if d["url"] is None:
            return None
        if ("?" in d["url"] or "#" in d["url"]) and not d.get("fail_url"):
            self.fail(f"{key}.fail_url", "is required when url has a query string (Uptime Kuma's push: the same "
                      "URL with status=down): url + /fail would land in the query")
        timeout = d.get("timeout", 5.0)
        if not 0.5 <= timeout <= 30:
            self.fail(f"{key}.timeout", f"{timeout:g}s is out of range 0.5-30s: a ping that waits longer holds "
                      "up cron's run")
        return Heartbeat(d["url"], d.get("fail_url"), timeout)


LISTED = 48  # the longest `allowed:` list an unknown key's line spells out


def unknown_key(key: str, allowed) -> str:
    """What is wrong with an unknown `key`: the allowed key it is closest
    to; else the allowed keys, when they are few; else where they are
    documented. A host's 19 keys made a 264-column line (#24)."""
    hint = _close(key, allowed)
    if hint:
        return f"unknown key (did you mean {hint[0]!r}?)"
    listed = ", ".join(allowed)
    return f"unknown key; allowed: {listed}" if len(listed) <= LISTED else "unknown key (see docs/hosts.md)"


def _close(word: str, choices) -> List[str]:
    import difflib  # only on the error path

    return difflib.get_close_matches(word, list(choices), n=1)
