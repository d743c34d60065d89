"""Config: file < environment < flags, sizes, defaults, validation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from modelshelfd.config import Config, ConfigError, load_config, parse_size
from tests.integration.conftest import write_config


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "modelshelfd.toml"
    path.write_text(text)
    return str(path)


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = _file(
        tmp_path,
        'socket = "/file.sock"\nl1_bytes = "1G"\nl2_bytes = 4096\nref_poll_seconds = 5\n'
        'store = "file:///from-file"\n',
    )
    env = {"MODELSHELF_L1_BYTES": "512M", "MODELSHELF_SOCKET": "/env.sock"}
    c = load_config(["--config", cfg, "--socket", "/flag.sock"], env)
    assert c.socket == "/flag.sock"  # flag over env over file
    assert c.l1_bytes == 512 << 20  # env over file
    assert c.l2_bytes == 4096 and c.ref_poll_seconds == 5.0  # file
    assert c.store == "file:///from-file"
    assert c.admin_socket == "/admin.sock"  # next to the socket by default
    with pytest.raises(AttributeError):
        c.socket = "x"  # type: ignore[misc]


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = _file(tmp_path, "max_connections = 3\n")
    assert load_config([], {"MODELSHELF_CONFIG": cfg}).max_connections == 3


def test_defaults_work_with_nothing(tmp_path: Path) -> None:
    c = load_config([], {})
    assert c.store.startswith("file://") and c.store.endswith("/store")
    assert c.l1_bytes > 0 and c.l2_bytes > 0
    assert c.shm_prefix.startswith(f"msf{os.getuid()}-")
    assert c.socket_mode == 0o600 and c.namespaces == {}
    other = load_config(["--socket", str(tmp_path / "other.sock")], {})
    assert other.shm_prefix != c.shm_prefix  # two daemons never share segment names


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("512M", 512 << 20), ("8G", 8 << 30), ("1.5GiB", 3 << 29), ("2k", 2048)],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "12X", "-1", "G", True, 1.5])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_size(bad)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ref-poll-seconds", "0.05"], "at least 0.1"),
        (["--max-connections", "0"], "at least 1"),
        (["--shm-prefix", "a/b"], "shm_prefix"),
        (["--policy", "fifo"], "policy"),
        (["--log-level", "loud"], "log_level"),
        (["--l1-bytes", "lots"], "l1_bytes"),
        (["--namespaces", '{"ns": {"users": [1]}}'], "namespaces"),
    ],
)
def test_invalid_values(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags, {})


def test_unknown_file_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(["--config", _file(tmp_path, "sockett = 'x'\n")], {})


def test_access_table(tmp_path: Path) -> None:
    cfg = _file(
        tmp_path,
        '[namespaces]\nteam = { uids = [1001], gids = [50] }\n"*" = { uids = [7] }\n',
    )
    c = load_config(["--config", cfg], {})
    assert c.allowed("team", 1001, 0) and c.allowed("team", 5, 50)
    assert not c.allowed("team", 7, 0)  # the namespace's own rule replaces "*"
    assert c.allowed("other", 7, 0) and not c.allowed("other", 1001, 0)
    default = Config()
    assert default.allowed("x", os.getuid(), 12345)
    assert not default.allowed("x", os.getuid() + 1, os.getgid())


def test_env_accepts_json_and_lists() -> None:
    env = {
        "MODELSHELF_NAMESPACES": '{"a": {"uids": [3]}}',
        "MODELSHELF_ADMIN_UIDS": "1, 2",
        "MODELSHELF_SOCKET_MODE": "0o660",
    }
    c = load_config([], env)
    assert c.namespaces == {"a": {"uids": (3,), "gids": ()}}
    assert c.admin_uids == (1, 2) and c.socket_mode == 0o660


def test_default_paths_for_an_unprivileged_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshelf import paths as _paths

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setenv("HOME", "/home/u")
    for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "MODELSHELF_SOCKET", "MODELSHELF_ADMIN_SOCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert _paths.default_socket() == "/run/user/1000/modelshelf/modelshelf.sock"
    assert _paths.default_admin_socket() == "/run/user/1000/modelshelf/admin.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert _paths.default_socket() == "/tmp/modelshelf-1000/modelshelf.sock"
    assert str(_paths.default_cache_dir()) == "/home/u/.cache/modelshelf"
    assert _paths.default_store_url() == "file:///home/u/.local/share/modelshelf/store"
    monkeypatch.setenv("MODELSHELF_SOCKET", "/x/s.sock")
    assert _paths.default_socket() == "/x/s.sock"
    # next to it, as the daemon places it: the CLI looked in the runtime directory
    assert _paths.default_admin_socket() == "/x/admin.sock"
    assert load_config([], {"MODELSHELF_SOCKET": "/x/s.sock"}).admin_socket == "/x/admin.sock"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("MODELSHELF_SOCKET")
    assert _paths.default_socket() == "/run/modelshelf/modelshelf.sock"
    assert str(_paths.default_cache_dir()) == "/var/cache/modelshelf"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("socket_mode = 600", r"socket_mode: expected permission bits 0o000..0o777, got 600"),
        ("socket_mode = -1", r"socket_mode: expected permission bits 0o000..0o777, got -1"),
        ("socket_mode = 0o4777", r"socket_mode: expected permission bits"),
        ('socket_mode = "0999"', r"socket_mode: expected octal permission bits"),
        ('namespaces = { acme = { uids = "1001" } }', r"namespaces.acme.uids: expected a list"),
        ('l1_bytes = "1.5"', r"l1_bytes: expected a whole number of bytes, got '1.5'"),
        ("l1_bytes = 0", r"l1_bytes must be positive; leave it out for the default"),
        ("socket = 5", r"socket: expected a string, got int 5"),
        ("store = true", r"store: expected a string, got bool True"),
        ('http = "127.0.0.1:99999"', r"http must be host:port with a port 1..65535"),
        ("ref_poll_seconds = nan", r"ref_poll_seconds: expected a finite number, got nan"),
        ("shutdown_timeout = inf", r"shutdown_timeout: expected a finite number"),
        ('ref_full_list_seconds = "x"', r"ref_full_list_seconds: expected a"),
        ("ref_full_list_seconds = 1", r"ref_full_list_seconds must be at least ref_poll_seconds"),
        ("ref_skew_seconds = 301", r"ref_skew_seconds must be between 0 and 300"),
        ("ref_skew_seconds = -1", r"ref_skew_seconds must be between 0 and 300"),
    ],
)
def test_every_value_is_type_checked_and_names_its_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(["--config", _file(tmp_path, toml + "\n")], {})


@pytest.mark.parametrize(
    ("given", "mode"), [("0666", 0o666), ("0o640", 0o640), ("600", 0o600), ("0", 0)]
)
def test_socket_mode_takes_octal_strings(given: str, mode: int) -> None:
    assert load_config(["--socket-mode", given], {}).socket_mode == mode
    assert load_config([], {"MODELSHELF_SOCKET_MODE": given}).socket_mode == mode


def test_the_flags_refuse_what_the_file_refuses() -> None:
    for flags in (["--http", "127.0.0.1:99999"], ["--ref-poll-seconds", "nan"]):
        with pytest.raises(ConfigError):
            load_config(flags, {})


def test_the_change_feed_keys_and_their_defaults() -> None:
    c = load_config([], {})
    assert (c.ref_full_list_seconds, c.ref_skew_seconds) == (300.0, 60.0)
    c = load_config(["--ref-full-list-seconds", "60"], {"MODELSHELF_REF_SKEW_SECONDS": "0"})
    assert (c.ref_full_list_seconds, c.ref_skew_seconds) == (60.0, 0.0)


def test_connection_bounds_and_their_defaults() -> None:
    c = load_config([], {})
    assert (c.max_connections_per_uid, c.idle_timeout, c.frame_timeout) == (256, 60.0, 5.0)
    assert Config().max_connections_per_uid == 256
    # the per-uid limit follows max_connections unless given
    assert load_config(["--max-connections", "100"], {}).max_connections_per_uid == 25
    assert load_config(["--max-connections", "2"], {}).max_connections_per_uid == 1
    env = {"MODELSHELF_MAX_CONNECTIONS_PER_UID": "7", "MODELSHELF_IDLE_TIMEOUT": "0.5"}
    c = load_config(["--frame-timeout", "2"], env)
    assert (c.max_connections_per_uid, c.idle_timeout, c.frame_timeout) == (7, 0.5, 2.0)
    for flags, match in (
        (["--max-connections-per-uid", "0"], "max_connections_per_uid must be at least 1"),
        (["--idle-timeout", "0"], "idle_timeout must be positive"),
        (["--frame-timeout", "-1"], "frame_timeout must be positive"),
        (["--idle-timeout", "soon"], "idle_timeout: expected a number"),
        (["--frame-timeout", "inf"], "frame_timeout: expected a finite number"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(flags, {})


def test_budgets_in_percent_of_the_machine(tmp_path) -> None:
    """L1 in percent of the daemon's memory limit, L2 of the free space under cache_dir."""
    import psutil

    from modelshelfd import machine

    cache = tmp_path / "cache"
    c = load_config(["--l1-bytes", "10%", "--l2-bytes", "50%", "--cache-dir", str(cache)], {})
    assert c.l1_bytes == int(0.10 * machine.memory_limit())
    free = psutil.disk_usage(str(tmp_path)).free
    assert abs(c.l2_bytes - free // 2) < free // 100  # the disk moves a little meanwhile
    env = load_config([], {"MODELSHELF_L1_BYTES": "2.5%", "MODELSHELF_CACHE_DIR": str(cache)})
    assert env.l1_bytes == int(0.025 * machine.memory_limit())


@pytest.mark.parametrize("bad", ["0%", "101%", "-5%", "nan%", "%", "ten%"])
def test_bad_percentages_name_the_key(bad: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"l1_bytes: .*percentage"):
        load_config([f"--l1-bytes={bad}", "--cache-dir", str(tmp_path)], {})


def test_version_and_check_config(tmp_path) -> None:
    """``modelshelfd --check-config`` prints the effective configuration (credentials hidden)
    and exits 0, or the error and 2; ``--version`` says which daemon this is."""
    import json
    import subprocess
    import sys

    import modelshelf

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelshelfd", *args],
            capture_output=True, text=True, timeout=60, check=False,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}, **env},
        )  # fmt: skip

    version = run("--version")
    assert (
        version.returncode == 0
        and version.stdout.strip() == f"modelshelfd {modelshelf.__version__}"
    )
    good = run(
        "--check-config", "--l1-bytes", "64M", "--cache-dir", str(tmp_path),
        "--store", "s3://bucket/prefix",
        MODELSHELF_STORE_OPTIONS=json.dumps(
            {"region": "eu", "aws_access_key_id": "id", "aws_secret_access_key": "s3cr3t",
             "proxy_url": "http://me:pr0xy@proxy:3128", "endpoint": "http://minio:9000"}
        ),
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    effective = json.loads(good.stdout)
    assert effective["l1_bytes"] == 64 << 20 and effective["cache_dir"] == str(tmp_path)
    assert effective["store_options"] == {
        "region": "eu",
        "aws_access_key_id": "<hidden>",  # a key name that says so: hidden too
        "aws_secret_access_key": "<hidden>",
        "proxy_url": "http://me:<hidden>@proxy:3128",  # a password in a URL was printed
        "endpoint": "http://minio:9000",
    }
    assert "s3cr3t" not in good.stdout and "pr0xy" not in good.stdout
    bad = run("--check-config", "--l1-bytes", "lots")
    assert bad.returncode == 2 and "l1_bytes: expected a size" in bad.stderr and not bad.stdout
    # what the daemon's store would refuse at start is refused here, the key named, no value
    for options, says in (
        ({"endpont": "http://x"}, "endpont: Configuration key: 'endpont' is not valid"),
        ({"region": 5}, "region: 'int' object is not an instance of 'str'"),
    ):
        bad = run(
            "--check-config",
            "--store",
            "s3://bucket/p",
            MODELSHELF_STORE_OPTIONS=json.dumps(options),
        )
        assert bad.returncode == 2 and says in bad.stderr, bad.stderr
    bad = run("--check-config", MODELSHELF_STORE_OPTIONS='{"region": "eu"}')  # file://
    assert bad.returncode == 2 and "a file:// store takes no options" in bad.stderr
    # what the daemon runs with: l1_bytes capped below the memory limit, and said so (it
    # printed the uncapped 100% and an advice a third larger than the daemon's; a probe)
    from modelshelfd import machine

    whole = run("--check-config", "--l1-bytes", "100%", "--cache-dir", str(tmp_path))
    effective = json.loads(whole.stdout)
    cap = int(machine.memory_limit() * machine.L1_SHARE)
    assert effective["l1_bytes"] == cap and effective["client_held_bytes"] == cap // 8
    assert "L1 is limited to" in whole.stderr


def test_http_inference_keys_and_their_defaults(tmp_path: Path) -> None:
    c = load_config([], {})
    assert (c.http, c.http_admin, c.http_max_body, c.http_namespaces) == (
        "",
        False,
        64 << 20,
        ("*",),
    )
    assert (c.http_infer_threads, c.http_infer_queue, c.http_infer_timeout) == (0, 64, 60.0)
    toml = (
        'http = "127.0.0.1:9100"\nhttp_admin = true\nhttp_max_body = "1M"\n'
        'http_namespaces = ["acme", "team-*"]\nhttp_infer_threads = 2\n'
    )
    c = load_config(["--config", _file(tmp_path, toml)], {})
    assert (c.http_admin, c.http_max_body, c.http_namespaces) == (True, 1 << 20, ("acme", "team-*"))
    assert c.http_infer_threads == 2
    env = {"MODELSHELF_HTTP_ADMIN": "off", "MODELSHELF_HTTP_NAMESPACES": "a, b"}
    c = load_config(["--config", _file(tmp_path, toml)], env)
    assert (c.http_admin, c.http_namespaces) == (False, ("a", "b"))
    assert load_config(["--http-namespaces", '["x"]'], {}).http_namespaces == ("x",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('http_admin = "maybe"', r"http_admin: expected true or false, got 'maybe'"),
        ("http_admin = 1", r"http_admin: expected true or false, got 1"),
        ("http_max_body = 100", r"http_max_body must be 1K to 4G"),
        ('http_max_body = "8G"', r"http_max_body must be 1K to 4G"),
        ('http_namespaces = ["a/b"]', r"http_namespaces: expected namespaces or patterns"),
        ("http_infer_threads = -1", r"http_infer_threads must be 0 \(derived\) to 256"),
        ("http_infer_queue = 0", r"http_infer_queue must be at least 1"),
        ("http_infer_timeout = 0", r"http_infer_timeout must be positive"),
    ],
)
def test_http_inference_keys_are_checked(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(["--config", _file(tmp_path, toml + "\n")], {})


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://x/y", "store must be a URL of file://, s3://, gs://, az://"),
        ("/abs/no/scheme", "a local directory is file:///path"),
        ("s3://", "name the bucket"),
        ("gs://", "name the bucket"),
        ("file://host/x", "a file store is file:///absolute/path"),
    ],
)
def test_a_store_url_the_daemon_cannot_open_is_a_configuration_error(url: str, says: str) -> None:
    """Refused with the configuration (exit 2, --check-config too), not at start (exit 1)
    after the cache directory was marked."""
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_config(["--store", url], {})


def test_a_share_that_comes_to_nothing_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="l1_bytes comes to 0 bytes"):
        load_config(["--l1-bytes", "1e-12%"], {})


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"store_max_retries": -1}, "store_max_retries must be 0 to 100"),
        ({"range_bytes": "1"}, "range_bytes must be 64K to 1G"),
        ({"namespaces": {"Acme": {"uids": [1]}}}, "invalid namespace 'Acme'"),
        ({"namespaces": {"acme*": {"uids": [1]}}}, "invalid namespace 'acme*'"),
        ({"namespaces": {"acme/churn": {"uids": [1]}}}, "a key is one namespace"),
        ({"namespaces": {"acme": {"uids": [-5]}}}, "acme.uids: expected a user or group id"),
        ({"namespaces": {"acme": {"gids": [1 << 32]}}}, "acme.gids: expected a user or group"),
        ({"namespaces": {"acme": {"uids": [1.5]}}}, "expected an integer, got 1.5"),
        ({"admin_uids": "-1"}, "expected a user or group id in 0..4294967294"),
        ({"max_connections": 10, "max_connections_per_uid": 20}, "is above max_connections"),
    ],
)
def test_settings_that_could_never_apply_are_refused(
    tmp_path: Path, given: dict[str, Any], says: str
) -> None:
    """Accepted before: a namespace key that can never match (the table is looked up by exact
    name), impossible ids, a float cut to an integer, a negative retry count (the store then
    failed at start, exit 1, naming no key), one store request per byte."""
    path = tmp_path / "c.toml"
    write_config(path, {"cache_dir": str(tmp_path / "cache"), **given})
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_config(["--config", str(path)], {})


def test_l2_shares_count_the_images_l2_already_holds(tmp_path: Path) -> None:
    """A share of the free space under cache_dir ("50%", or the default half) left out L2's
    own files: every restart of a node whose L2 filled its disk computed a smaller budget and
    evicted adopted images, read from the store again (a probe: 32 MiB, then 21 MiB)."""
    import subprocess

    import psutil

    from modelshelfd import config as config_mod

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(disk)], check=True
    )
    try:
        images = disk / "cache" / "images"
        before = config_mod._free_disk(disk / "cache")
        images.mkdir(parents=True)
        (images / ("a" * 64)).write_bytes(b"x" * (3 << 20))
        (images / "link").symlink_to(images / ("a" * 64))  # counted once
        assert config_mod._cached_bytes(images) == 3 << 20
        assert psutil.disk_usage(str(disk)).free <= before - (3 << 20)
        # the same room as before, but for the two directories' own pages
        assert before - 8192 <= config_mod._free_disk(disk / "cache") <= before
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_socket_path_longer_than_a_unix_socket_takes_is_a_configuration_error() -> None:
    """--check-config passed it and the start failed with 'OSError: AF_UNIX path too long',
    naming neither the key nor the limit (a second probe)."""
    long = "/tmp/" + "d" * 100 + "/s.sock"
    with pytest.raises(ConfigError, match=r"socket '/tmp/d+/s.sock' is 112 bytes long.*107"):
        load_config([], {"MODELSHELF_SOCKET": long})
    with pytest.raises(ConfigError, match=r"admin_socket .* at most 107"):
        load_config([], {"MODELSHELF_ADMIN_SOCKET": long})


@pytest.mark.parametrize("key", ["store_retry_timeout", "idle_timeout", "shutdown_timeout"])
def test_a_timeout_beyond_any_timer_is_a_configuration_error(key: str) -> None:
    """1e300 passed the checks, then killed the daemon at start with an OverflowError
    traceback (exit 1: systemd restarted it in a loop)."""
    with pytest.raises(ConfigError, match=f"{key} must be positive and at most"):
        load_config([f"--{key.replace('_', '-')}", "1e300"], {})


def test_the_admin_socket_may_not_be_the_clients_socket(tmp_path: Path) -> None:
    """The admin socket replaced the clients' one; the daemon said ready, nobody could use it."""
    path = str(tmp_path / "s.sock")
    with pytest.raises(ConfigError, match="same path"):
        load_config(["--socket", path, "--admin-socket", path], {})
    with pytest.raises(ConfigError, match="same path"):  # spelled otherwise, the same file
        load_config(["--socket", path, "--admin-socket", f"{tmp_path}/./s.sock"], {})
    (tmp_path / "run").symlink_to(tmp_path)  # /var/run -> /run
    with pytest.raises(ConfigError, match="same path"):
        load_config(["--socket", path, "--admin-socket", str(tmp_path / "run" / "s.sock")], {})


@pytest.mark.parametrize("where", ["same", "store inside", "cache inside"])
def test_a_file_store_may_not_share_the_cache_directory(tmp_path: Path, where: str) -> None:
    """Both keep images/<digest>: evicting the L2 copy deleted the store's only copy."""
    cache, store = {
        "same": (tmp_path / "ms", tmp_path / "ms"),
        "store inside": (tmp_path / "ms", tmp_path / "ms" / "store"),
        "cache inside": (tmp_path / "ms" / "cache", tmp_path / "ms"),
    }[where]
    with pytest.raises(ConfigError, match="overlap"):
        load_config(["--cache-dir", str(cache), "--store", store.as_uri()], {})
    beside = load_config(["--cache-dir", str(tmp_path / "cache"), "--store", store.as_uri()], {})
    assert beside.cache_dir == str(tmp_path / "cache")


def test_the_warm_list_takes_what_prefetch_takes_and_refuses_what_matches_nothing(
    tmp_path: Path,
) -> None:
    """A probe: 'acme/*@1' passed --check-config and warmed nothing (patterns match names,
    not versions), '*' was refused where prefetch takes it, and a TOML string was refused
    as 'expected a JSON list'."""
    assert load_config(["--warm", '["*", "acme/*", "demo/iris@2"]'], {}).warm == (
        "*", "acme/*", "demo/iris@2",
    )  # fmt: skip
    assert load_config([], {"MODELSHELF_WARM": "acme/*, demo/iris@2"}).warm == (
        "acme/*", "demo/iris@2",
    )  # fmt: skip
    cfg = tmp_path / "d.toml"
    cfg.write_text('warm = "acme/*"\n')
    assert load_config(["--config", str(cfg)], {}).warm == ("acme/*",)
    with pytest.raises(ConfigError, match="can match nothing: patterns match model names"):
        load_config(["--warm", '["acme/*@1"]'], {})
    with pytest.raises(ConfigError):
        load_config(["--warm", '["not a name"]'], {})
