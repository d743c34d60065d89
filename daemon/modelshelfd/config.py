"""The daemon's configuration: one frozen dataclass built once, then passed explicitly.

Sources, later ones winning: the TOML file named by ``--config``, then ``MODELSHELF_<KEY>``
environment variables, then command-line flags ``--<key with dashes>``. Every key is documented
on its field below and in docs/configuration.md. Defaults work unprivileged with no file at all.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import stat
import tomllib
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelshelf import __version__, sizes
from modelshelf import paths as _paths
from modelshelf.feed import OVERLAP_MS

_GIB = 1 << 30
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


def parse_size(value: object) -> int:
    """``4096``, ``"512M"``, ``"8G"``, ``"1.5GiB"`` -> bytes (``modelshelf.sizes``, which the
    client's MODELSHELF_MAX_HELD_BYTES shares). A fraction of a byte is an error."""
    try:
        return sizes.parse_size(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Share:
    """A budget given as a percentage ("25%"): of the daemon's memory limit for L1, of the
    free space under cache_dir for L2; resolved to bytes once the config is complete."""

    fraction: float


def _budget(value: object) -> int | Share:
    """A size (``parse_size``) or a percentage: ``"25%"``, 0 < p <= 100."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise ConfigError(f"expected a percentage like '25%', got {value!r}") from None
        if not (math.isfinite(percent) and 0 < percent <= 100):
            raise ConfigError(f"a percentage must be in (0, 100], got {value!r}")
        return Share(percent / 100)
    return parse_size(value)


@dataclass(frozen=True)
class Config:
    # client socket path (applications connect here)
    """The daemon's configuration, built once (file, environment, flags) and passed around."""

    socket: str = ""
    # admin socket path (operators and the CLI; mode 0600)
    admin_socket: str = ""
    # permission bits of the client socket; 0o600 lets only the daemon's uid connect, 0o666
    # lets every local user connect (namespaces then decide who may acquire what)
    socket_mode: int = 0o600
    # object store URL: file:///dir, s3://bucket/prefix, gs://bucket, az://container
    store: str = ""
    # extra obstore configuration for the store (endpoint, region, ...); file or JSON only
    store_options: Mapping[str, Any] = field(default_factory=dict)
    # L2 directory: images/<digest> files and tmp/ for files being written
    cache_dir: str = ""
    # name prefix of this instance's shared-memory segments (/dev/shm/<prefix>-...)
    shm_prefix: str = ""
    # L1 budget: bytes of shared memory held by images (leased evicted images still count)
    l1_bytes: int = 0
    # L2 budget: bytes of image files in cache_dir
    l2_bytes: int = 0
    # bytes of models each client keeps mapped for reuse, advertised in the hello (a client's
    # own max_held_bytes or MODELSHELF_MAX_HELD_BYTES wins); 0: an eighth of l1_bytes
    client_held_bytes: int = 0
    # models each client keeps for reuse, advertised likewise (MODELSHELF_MAX_HELD_MODELS)
    client_held_models: int = 256
    # how often the catalog lists the store's refs; also the age after which acquiring
    # "ns/name" (latest) re-checks the store
    ref_poll_seconds: float = 2.0
    # how often the catalog lists every ref, reconciling what the change feed cannot show
    # (refs written by publishers older than the feed, clocks further behind than
    # ref_skew_seconds); between these, a poll reads only the feed's new events
    ref_full_list_seconds: float = 300.0
    # how far behind this daemon's clock a publisher's clock may be and its publishes still
    # be seen at the next poll: each poll re-reads this much of the feed (at most 300)
    ref_skew_seconds: float = 60.0
    # simultaneous connections on the client socket (admin socket: 16)
    max_connections: int = 1024
    # client connections one uid may hold at once, so that one user cannot take every slot
    # (the daemon's own uid is not limited); left out: a quarter of max_connections
    max_connections_per_uid: int = 256
    # seconds a client connection that holds no lease may stay without a request before the
    # daemon closes it (the client reconnects by itself at its next request); connections
    # that hold leases are never closed for idleness: the leases are what their mappings use
    idle_timeout: float = 60.0
    # images fetched from L2/L3 at the same time; further fetches wait
    max_inflight_fetches: int = 8
    # parallel ranged reads per large image fetched from the store
    fetch_parallelism: int = 8
    # size of one ranged read; images larger than this are fetched in parallel ranges
    range_bytes: int = 8 << 20
    # access table: {namespace or "*": {"uids": [...], "gids": [...], "l1_share": 0.25,
    # "l2_share": 0.5}}; empty allows only the daemon's own uid everywhere. Shares (optional,
    # 0 < share <= 1) bound the bytes a namespace's leases pin in each tier (quota.py)
    namespaces: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # uids allowed on the admin socket (besides the socket's 0600 mode); empty: the daemon's
    admin_uids: tuple[int, ...] = ()
    # models placed on the node at start, before the daemon is ready: names (ns/name,
    # ns/name@7) and shell-style patterns over the catalog (acme/*)
    warm: tuple[str, ...] = ()
    # eviction and admission in L1 and L2: "cost" (measured reload cost per byte over the
    # expected wait for the next use, policy.py) or "lru" (least recently used; for comparison)
    policy: str = "cost"
    # DEBUG, INFO, WARNING, ERROR
    log_level: str = "INFO"
    # "text" (one sentence a line), "logfmt" or "json" (logformat.py)
    log_format: str = "text"
    # host:port of the HTTP endpoint (/healthz, /readyz, /metrics and the Open Inference
    # Protocol under /v2); empty disables it
    http: str = ""
    # bytes of one HTTP request body (an inference request, binary tensors included); a
    # larger one is refused (413) before it is read
    http_max_body: int = 64 << 20
    # allow the Open Inference Protocol's repository extension (load = prefetch + pin, unload
    # = unpin + evict) over HTTP, which has no peer credentials: anyone who reaches the port
    # may then pin and evict. Off: those requests are refused (403)
    http_admin: bool = False
    # namespaces whose models HTTP serves (shell-style patterns); HTTP has no peer uid, so
    # the namespaces table cannot apply to it
    http_namespaces: tuple[str, ...] = ("*",)
    # threads that run HTTP inferences; 0: the number of CPUs, at most 8
    http_infer_threads: int = 0
    # HTTP inference requests admitted at once (running or waiting for a thread); one more
    # is answered 503 at once
    http_infer_queue: int = 64
    # seconds to answer one HTTP inference or repository request, reading the body and a cold
    # fetch from the store included (other HTTP requests: 10 s)
    http_infer_timeout: float = 60.0
    # seconds graceful shutdown waits for connections before closing them
    shutdown_timeout: float = 5.0
    # seconds a reply may wait for the peer to read it; a peer that stops reading its
    # replies is disconnected (and its leases dropped) after this long
    send_timeout: float = 10.0
    # seconds from a message's first byte to its last; a peer that leaves a message unfinished
    # longer is disconnected (a real client sends one whole message at a time)
    frame_timeout: float = 5.0
    # store retries before a request fails with store_unavailable
    store_max_retries: int = 3
    # seconds of retrying before a store request fails
    store_retry_timeout: float = 10.0

    def allowed(self, namespace: str, uid: int, gid: int, groups: Collection[int] = ()) -> bool:
        """May a peer with ``uid``, primary ``gid`` and supplementary ``groups`` use
        ``namespace``? A namespace without a rule (and no "*" rule) is open to the daemon's
        own uid only."""
        rule = self.namespaces.get(namespace, self.namespaces.get("*"))
        if rule is None:
            return uid == os.getuid()
        gids = rule.get("gids", ())
        return uid in rule.get("uids", ()) or gid in gids or any(g in gids for g in groups)

    def share(self, namespace: str, tier: str) -> float | None:
        """The fraction of ``tier``'s budget (l1, l2) the namespace's leases may pin; None:
        no bound. A namespace without a rule of its own takes the share of "*", for itself."""
        rule = self.namespaces.get(namespace, self.namespaces.get("*"))
        return None if rule is None else rule.get(f"{tier}_share")


def _int(value: object) -> int:
    if isinstance(value, bool | float):  # a float would be cut to an integer silently
        raise ConfigError(f"expected an integer, got {value!r}")
    try:
        return int(value, 0) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"expected an integer, got {value!r}") from exc


def _float(value: object) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"expected a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"expected a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise ConfigError(f"expected a finite number, got {value!r}")
    return number


def _str(value: object) -> str:
    """A string as written: a number where a path or URL belongs is a mistake, not a name."""
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _mode(value: object) -> int:
    """Permission bits 0..0o777: an int (TOML ``0o660``) or an octal string (``"0660"``,
    ``"0o660"``, ``"660"``). A decimal 660 is not 0o660: it is refused, never reinterpreted."""
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,4}", text):
            raise ConfigError(f"expected octal permission bits like '0660', got {value!r}")
        mode = int(text, 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        raise ConfigError(f"expected permission bits like 0o660 or '0660', got {value!r}")
    if not 0 <= mode <= 0o777:
        raise ConfigError(
            f"expected permission bits 0o000..0o777, got {value!r} ({mode:#o}); in TOML write "
            "0o660, not 660"
        )
    return mode


def _json_or(value: object, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"expected a JSON {kind.__name__}, got {value!r}") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"expected a {kind.__name__}, got {value!r}")
    return value


_RULE_KEYS = {"uids", "gids", "l1_share", "l2_share"}


def _namespaces(value: object) -> dict[str, dict[str, Any]]:
    from modelshelf.errors import InvalidModelName
    from modelshelf.names import check_part

    table = _json_or(value, dict)
    out: dict[str, dict[str, Any]] = {}
    for ns, rule in table.items():
        if ns != "*":  # looked up by exact name: any other key would never match
            try:
                check_part(ns)
            except InvalidModelName as exc:
                raise ConfigError(
                    f"{exc}: a key is one namespace, or '*' for every other one"
                ) from None
        if not isinstance(rule, dict) or set(rule) - _RULE_KEYS:
            raise ConfigError(
                f"namespaces.{ns}: expected {{uids = [...], gids = [...]}} with optional "
                f"l1_share and l2_share, got {rule!r:.80}"
            )
        parsed: dict[str, Any] = {}
        for k in ("uids", "gids"):
            given = rule.get(k, [])
            if not isinstance(given, list | tuple):  # a string would grant its digits
                raise ConfigError(
                    f"namespaces.{ns}.{k}: expected a list of ids like [1001], got {given!r}"
                )
            try:
                parsed[k] = tuple(_id(i) for i in given)
            except ConfigError as exc:
                raise ConfigError(f"{ns}.{k}: {exc}") from exc
        for k in ("l1_share", "l2_share"):
            if k in rule:
                try:
                    share = _float(rule[k])
                except ConfigError as exc:
                    raise ConfigError(f"namespaces.{ns}.{k}: {exc}") from exc
                if not 0 < share <= 1:
                    raise ConfigError(
                        f"namespaces.{ns}.{k}: expected a fraction of the tier's budget, "
                        f"0 < share <= 1 (0.25 for a quarter), got {rule[k]!r}"
                    )
                parsed[k] = share
        out[str(ns)] = parsed
    return out


MAX_WARM = 10_000  # entries of the warm list (each may be a pattern)


def _warm(value: object) -> tuple[str, ...]:
    """A list of names (``ns/name[@N]``) and shell-style patterns over the catalog's names
    (``acme/*``, ``*``: as ``modelshelf prefetch`` takes them); a string is a JSON list or
    comma-separated entries (a TOML string, an environment variable)."""
    items: object = value
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            items = _json_or(value, list)
        else:
            items = [part.strip() for part in stripped.split(",") if part.strip()]
    if not isinstance(items, list | tuple) or len(items) > MAX_WARM:
        raise ConfigError(
            f"expected a list of at most {MAX_WARM} names like ['acme/*'], got {value!r:.80}"
        )
    out = []
    for item in items:
        if not isinstance(item, str) or not 0 < len(item) <= 256:
            raise ConfigError(
                f"expected names or patterns like 'ns/name' or 'acme/*', got {item!r:.80}"
            )
        if set(item) & set("*?["):
            if "@" in item:  # patterns match the catalog's names, ns/name: never a version
                raise ConfigError(
                    f"the pattern {item!r:.80} can match nothing: patterns match model names "
                    "(ns/name), not versions; name a version alone ('acme/churn@3'), or "
                    "drop the @ to warm the latest of each"
                )
        else:
            from modelshelf.names import parse_ref

            try:
                parse_ref(item)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        out.append(item)
    return tuple(out)


MAX_ID = (1 << 32) - 2  # uid_t and gid_t; -1 (2**32 - 1) means "no id" to the kernel


def _id(value: object) -> int:
    number = _int(value)
    if not 0 <= number <= MAX_ID:
        raise ConfigError(f"expected a user or group id in 0..{MAX_ID}, got {value!r}")
    return number


def _uids(value: object) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"expected a list of uids, got {value!r}")
    return tuple(_id(v) for v in value)


def _bool(value: object) -> bool:
    """true/false in TOML; in the environment and flags, true/false, 1/0, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
    raise ConfigError(f"expected true or false, got {value!r}")


MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path (sun_path holds 108 with the NUL)
MAX_HTTP_NAMESPACES = 1024  # patterns in http_namespaces


def _patterns(value: object) -> tuple[str, ...]:
    """Namespaces or shell-style patterns over them: a list, JSON or comma-separated."""
    if isinstance(value, str):
        text = value.strip()
        value = (
            _json_or(text, list)
            if text.startswith("[")
            else [v for v in text.replace(",", " ").split() if v]
        )
    if not isinstance(value, list | tuple) or len(value) > MAX_HTTP_NAMESPACES:
        raise ConfigError(
            f"expected a list of at most {MAX_HTTP_NAMESPACES} namespaces or patterns like "
            f"['acme', 'team-*'], got {value!r:.80}"
        )
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= 64 or "/" in item:
            raise ConfigError(f"expected namespaces or patterns like 'acme', got {item!r:.80}")
    return tuple(value)


def _policy(value: object) -> str:
    if value not in ("cost", "lru"):
        raise ConfigError(f"expected 'cost' or 'lru', got {value!r}")
    return str(value)


def _log_format(value: object) -> str:
    if value not in ("text", "logfmt", "json"):
        raise ConfigError(f"expected 'text', 'logfmt' or 'json', got {value!r}")
    return str(value)


def _level(value: object) -> str:
    level = str(value).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return level


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "socket": _str,
    "admin_socket": _str,
    "socket_mode": _mode,
    "store": _str,
    "store_options": lambda v: _json_or(v, dict),
    "cache_dir": _str,
    "shm_prefix": _str,
    "l1_bytes": _budget,
    "l2_bytes": _budget,
    "client_held_bytes": parse_size,
    "client_held_models": _int,
    "ref_poll_seconds": _float,
    "ref_full_list_seconds": _float,
    "ref_skew_seconds": _float,
    "max_connections": _int,
    "max_connections_per_uid": _int,
    "idle_timeout": _float,
    "max_inflight_fetches": _int,
    "fetch_parallelism": _int,
    "range_bytes": parse_size,
    "namespaces": _namespaces,
    "admin_uids": _uids,
    "warm": _warm,
    "log_level": _level,
    "log_format": _log_format,
    "policy": _policy,
    "http": _str,
    "http_max_body": parse_size,
    "http_admin": _bool,
    "http_namespaces": _patterns,
    "http_infer_threads": _int,
    "http_infer_queue": _int,
    "http_infer_timeout": _float,
    "shutdown_timeout": _float,
    "send_timeout": _float,
    "frame_timeout": _float,
    "store_max_retries": _int,
    "store_retry_timeout": _float,
}
assert set(_CONVERT) == {f.name for f in dataclasses.fields(Config)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelshelfd",
        description="The modelshelf node daemon: keeps model images in shared memory, on local "
        "disk and in an object store, and hands them to local processes read-only.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--version", action="version", version=f"modelshelfd {__version__}")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration (file, MODELSHELF_* variables, flags), print the "
        "effective one as JSON and exit: 0 if valid, 2 with the error otherwise",
    )
    for name in _CONVERT:
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar=name.upper(),
            help=f"overrides the file and MODELSHELF_{name.upper()}",
        )
    return parser


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the Config from the file, then the environment, then ``argv`` flags."""
    return config_from_sources(config_sources(argv, environ))


def config_from_sources(raw: dict[str, Any]) -> Config:
    """The Config of values as given (``config_sources``): converted, checked, defaulted."""
    return _with_defaults(_converted(raw))


#: keys whose bytes are derived from the machine (a share, or the default) at each load
DERIVED = ("l1_bytes", "l2_bytes", "client_held_bytes")


def config_sources(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overridden: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The values as given (file, environment, flags), before conversion and defaults: what
    a reload compares for the keys whose bytes the machine decides (``DERIVED``: "25%" or
    absent stays the same setting, even where the free space it is a share of has moved).
    ``overridden`` receives the keys the file sets to another value than the environment or a
    flag, which win: {key: "MODELSHELF_KEY" or "--key"} (a reload says so)."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    raw: dict[str, Any] = {}
    path = args.config or env.get("MODELSHELF_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                raw.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        unknown = set(raw) - set(_CONVERT)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    in_file = dict(raw)
    for name in _CONVERT:
        value = env.get(f"MODELSHELF_{name.upper()}")
        if value is not None and value != "":
            raw[name] = value
            _note_override(overridden, in_file, name, value, f"MODELSHELF_{name.upper()}")
    for name in _CONVERT:
        value = getattr(args, name)
        if value is not None:
            raw[name] = value
            _note_override(overridden, in_file, name, value, f"--{name.replace('_', '-')}")
    return raw


def _note_override(
    overridden: dict[str, str] | None, in_file: dict[str, Any], name: str, value: Any, by: str
) -> None:
    if overridden is None or name not in in_file:
        return
    try:
        differs = _CONVERT[name](in_file[name]) != _CONVERT[name](value)
    except ConfigError:
        differs = True  # one of them is invalid: the conversion of the winner says so
    if differs:
        overridden[name] = by
    else:
        overridden.pop(name, None)


def _converted(raw: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, convert in _CONVERT.items():
        if name in raw:
            try:
                values[name] = convert(raw[name])
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    return values


_STORE_SCHEMES = ("file", "s3", "gs", "az")  # modelshelf.store.SCHEMES but "memory" (tests)


def _check_store_url(url: str) -> None:
    """What the daemon would refuse at start, refused with the configuration (exit 2)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in _STORE_SCHEMES:
        raise ConfigError(
            f"store must be a URL of {', '.join(s + '://' for s in _STORE_SCHEMES)}, got "
            f"{url!r}" + (" (a local directory is file:///path)" if url.startswith("/") else "")
        )
    from modelshelf.errors import ShelfError
    from modelshelf.store import check_url

    try:
        check_url(url)  # the shape the Store itself requires
    except ShelfError as exc:
        raise ConfigError(str(exc)) from None


MAX_SECONDS = 1e9  # a timeout beyond it (31 years) is no bound at all, and overflows timers


def _check_store_apart(store: str, cache_dir: str) -> None:
    """A ``file://`` store may not share a directory with the cache, nor lie inside it or
    around it: both keep ``images/<digest>`` files, and the daemon deletes its own (eviction,
    strays), which would delete the store's only copy of a published model."""
    parsed = urllib.parse.urlparse(store)
    if parsed.scheme != "file":
        return
    ours = os.path.realpath(cache_dir)
    theirs = os.path.realpath(urllib.parse.unquote(parsed.path))
    if os.path.commonpath([ours, theirs]) in (ours, theirs):  # the same, or one in the other
        raise ConfigError(
            f"store {store!r} and cache_dir {cache_dir!r} overlap: the daemon deletes files in "
            "cache_dir (evicted copies, strays), and the store's images would be among them; "
            "give them separate directories (e.g. /var/lib/modelshelf/store and "
            "/var/cache/modelshelf)"
        )


def _with_defaults(values: dict[str, Any]) -> Config:
    socket = values.get("socket") or str(_paths.runtime_dir() / _paths.SOCKET_NAME)
    values["socket"] = socket
    values["admin_socket"] = values.get("admin_socket") or str(
        Path(socket).parent / _paths.ADMIN_SOCKET_NAME
    )
    for key in ("socket", "admin_socket"):  # the kernel's sun_path: 108 bytes with its NUL
        if len(os.fsencode(values[key])) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"{key} {values[key]!r} is {len(os.fsencode(values[key]))} bytes long; a Unix "
                f"socket's path takes at most {MAX_SOCKET_PATH}: choose a shorter one"
            )
    if os.path.realpath(values["socket"]) == os.path.realpath(values["admin_socket"]):
        raise ConfigError(
            f"socket and admin_socket are the same path ({values['socket']!r}): the admin "
            "socket would replace the clients' one; give admin_socket another path (or leave "
            "it out: admin.sock beside the socket)"
        )
    values["store"] = values.get("store") or _paths.default_store_url()
    _check_store_url(values["store"])
    values["cache_dir"] = values.get("cache_dir") or str(_paths.default_cache_dir())
    _check_store_apart(values["store"], values["cache_dir"])
    if not values.get("shm_prefix"):
        # uid + hash of the socket path: two daemons (two sockets) never share segment names
        tag = hashlib.sha256(os.path.abspath(socket).encode()).hexdigest()[:8]
        values["shm_prefix"] = f"msf{os.getuid()}-{tag}"
    if not _PREFIX.fullmatch(values["shm_prefix"]):
        raise ConfigError(f"shm_prefix must be 1-64 of A-Z a-z 0-9 _ . -: {values['shm_prefix']!r}")
    for name in ("l1_bytes", "l2_bytes", "client_held_bytes"):
        if name in values and values[name] == 0:  # never silently "the default"
            raise ConfigError(f"{name} must be positive; leave it out for the default")
    if isinstance(values.get("l1_bytes"), Share):
        values["l1_bytes"] = int(values["l1_bytes"].fraction * _memory_limit())
    if isinstance(values.get("l2_bytes"), Share):
        values["l2_bytes"] = int(
            values["l2_bytes"].fraction * _free_disk(Path(values["cache_dir"]))
        )
    for name in ("l1_bytes", "l2_bytes"):
        if values.get(name, 1) == 0:  # a share that rounds to nothing ("1e-12%")
            raise ConfigError(f"{name} comes to 0 bytes: give a larger share")
    if "l1_bytes" not in values:
        values["l1_bytes"] = _default_l1()
    if "l2_bytes" not in values:
        values["l2_bytes"] = _default_l2(Path(values["cache_dir"]))
    if "client_held_bytes" not in values:
        values["client_held_bytes"] = values["l1_bytes"] // 8
    if "http_namespaces" not in values and values.get("namespaces"):
        # the socket's rules cannot apply to HTTP (no peer uid): where they restrict, HTTP
        # serves only what the operator lists, never every tenant to every local user
        values["http_namespaces"] = ()
    http = values.get("http")
    if http:
        match = re.fullmatch(r"[\w.\-\[\]:]*:(\d{1,5})", http)
        if not match or not 1 <= int(match[1]) <= 65535:
            raise ConfigError(f"http must be host:port with a port 1..65535, got {http!r}")
    for name in (
        "shutdown_timeout", "send_timeout", "frame_timeout", "idle_timeout", "store_retry_timeout",
        "http_infer_timeout",
    ):  # fmt: skip
        if name in values and not 0 < values[name] <= MAX_SECONDS:
            raise ConfigError(
                f"{name} must be positive and at most {MAX_SECONDS:.0f} s, got {values[name]}"
            )
    poll = values.get("ref_poll_seconds", 2.0)
    if poll < 0.1:
        raise ConfigError(f"ref_poll_seconds must be at least 0.1, got {poll}")
    full = values.get("ref_full_list_seconds", 300.0)
    if full < poll:
        raise ConfigError(
            f"ref_full_list_seconds must be at least ref_poll_seconds ({poll}), got {full}"
        )
    skew = values.get("ref_skew_seconds", 60.0)
    if not 0 <= skew <= OVERLAP_MS / 1000:
        raise ConfigError(
            f"ref_skew_seconds must be between 0 and {OVERLAP_MS // 1000} (the overlap "
            f"`modelshelf gc` keeps before a snapshot), got {skew}"
        )
    for name in (
        "max_connections", "max_connections_per_uid", "max_inflight_fetches",
        "fetch_parallelism", "client_held_models", "http_infer_queue",
    ):  # fmt: skip
        if name in values and values[name] < 1:
            raise ConfigError(f"{name} must be at least 1, got {values[name]}")
    if not 0 <= values.get("http_infer_threads", 0) <= 256:
        raise ConfigError(
            f"http_infer_threads must be 0 (derived) to 256, got {values['http_infer_threads']}"
        )
    if not 1024 <= values.get("http_max_body", 1024) <= 1 << 32:
        raise ConfigError(f"http_max_body must be 1K to 4G, got {values['http_max_body']} bytes")
    if "max_connections_per_uid" not in values:
        values["max_connections_per_uid"] = max(1, values.get("max_connections", 1024) // 4)
    elif values["max_connections_per_uid"] > values.get("max_connections", 1024):
        raise ConfigError(
            f"max_connections_per_uid ({values['max_connections_per_uid']}) is above "
            f"max_connections ({values.get('max_connections', 1024)}): lower it, or raise "
            "max_connections"
        )
    if not MIN_RANGE <= values.get("range_bytes", MIN_RANGE) <= MAX_RANGE:
        raise ConfigError(
            f"range_bytes must be {MIN_RANGE >> 10}K to {MAX_RANGE >> 30}G (one store request "
            f"per range), got {values['range_bytes']} bytes"
        )
    retries = values.get("store_max_retries", Config.store_max_retries)
    if not 0 <= retries <= MAX_RETRIES:
        raise ConfigError(f"store_max_retries must be 0 to {MAX_RETRIES}, got {retries}")
    _check_store_options(values)
    return Config(**values)


MIN_RANGE, MAX_RANGE = 64 << 10, 1 << 30  # bytes of one ranged read of the store
MAX_RETRIES = 100


def _check_store_options(values: dict[str, Any]) -> None:
    """``store_options`` as the daemon will open the store with them (unknown keys, values of
    the wrong type), refused with the configuration; nothing is contacted or created."""
    from modelshelf.errors import ShelfError
    from modelshelf.store import check_options

    options = values.get("store_options") or {}
    try:
        check_options(
            values["store"],
            options,
            max_retries=values.get("store_max_retries", Config.store_max_retries),
            retry_timeout=values.get("store_retry_timeout", Config.store_retry_timeout),
        )
    except ShelfError as exc:
        raise ConfigError(f"store_options: {exc}") from None


def _memory_limit() -> int:
    from . import machine

    return machine.memory_limit()


def _default_l1() -> int:
    # a quarter of the memory the daemon may use (its cgroup's limit, else RAM), capped: the
    # shelf shares the node with the applications it serves
    return int(min(_memory_limit() // 4, 16 * _GIB))


def _free_disk(cache_dir: Path) -> int:
    """The room L2 may take a share of: the free space under ``cache_dir`` and the images L2
    already holds there (a restart must find the budget it left, not one its own files made
    smaller: each restart of a node whose L2 filled its disk shrank it, and evicted)."""
    import psutil

    probe = cache_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return int(psutil.disk_usage(str(probe)).free) + _cached_bytes(cache_dir / "images")


def _cached_bytes(images: Path) -> int:
    total = 0
    try:
        with os.scandir(images) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        total += st.st_blocks * 512
    except OSError:  # none yet (or not readable: the daemon will say so at start)
        return 0
    return total


def _default_l2(cache_dir: Path) -> int:
    return int(min(_free_disk(cache_dir) // 2, 64 * _GIB))
