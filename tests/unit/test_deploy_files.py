"""The deployment files (systemd unit, Dockerfiles, docker-compose.yml, Kubernetes manifests,
the ops docs' examples) parse, and agree with the code: the daemon's real configuration loader
reads their settings, and the paths where they put sockets, caches and shared memory are the
ones the daemon and its clients will use.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelshelf import __version__, _kernels
from modelshelf import paths as _paths
from modelshelf.admin import ENVIRONMENT as admin_environment
from modelshelf.cli import build_parser
from modelshelf.client import ENVIRONMENT as client_environment
from modelshelfd.config import Config, load_config, parse_size
from modelshelfd.machine import L1_SHARE
from tests.kernels import require

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"


# -- helpers ------------------------------------------------------------------------------------


def daemon_config(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], argv: list[str] | None = None
) -> Config:
    """The Config a non-root daemon builds from ``env`` (XDG_* included), as in a unit/image."""
    for key in ("XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(_paths, "_is_root", lambda: False)
    return load_config(argv or [], {k: v for k, v in env.items() if k.startswith("MODELSHELF_")})


def unit_file(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]} (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            assert current is not None, f"{path}: {line!r} before any section"
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not key=value: {line!r}"
            current.append((key.strip(), value.strip()))
    return sections


def dockerfile_env(path: Path) -> dict[str, str]:
    """ENV instructions of a Dockerfile (KEY=VALUE forms, with line continuations)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def instruction(path: Path, name: str) -> list[str]:
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line[len(name) + 1 :].strip() for line in text.splitlines() if line.startswith(name)]


def k8s(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def memory_bytes(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity)
    assert m, f"memory quantity {quantity!r}"
    return int(m[1]) << {None: 0, "Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40}[m[2]]


def code_blocks(path: Path, lang: str) -> Iterator[str]:
    yield from re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


IMAGE_ENV = dockerfile_env(ROOT / "deploy" / "Dockerfile")


# -- systemd ------------------------------------------------------------------------------------


UNIT = ROOT / "systemd" / "modelshelfd.service"


def test_unit_runs_as_a_dedicated_user_in_the_directories_the_daemon_defaults_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = unit_file(UNIT)["Service"]
    settings = dict(service)
    assert settings["User"] == settings["Group"] == "modelshelf"
    assert "DynamicUser" not in settings  # uids must be stable: namespaces and admin_uids
    env: dict[str, str] = {}
    for key, value in service:
        if key == "Environment":
            for word in shlex.split(value):
                name, _, setting = word.partition("=")
                env[name] = setting
    config = daemon_config(monkeypatch, env)
    run, cache, state = (
        Path("/run", settings["RuntimeDirectory"]),
        Path("/var/cache", settings["CacheDirectory"]),
        Path("/var/lib", settings["StateDirectory"]),
    )
    assert Path(config.socket).parent == run and Path(config.admin_socket).parent == run
    assert Path(config.cache_dir) == cache
    assert config.store == (state / "store").as_uri()
    # root's CLI finds the admin socket by default, and root is an admin
    monkeypatch.setattr(_paths, "_is_root", lambda: True)
    monkeypatch.delenv("MODELSHELF_ADMIN_SOCKET", raising=False)
    assert _paths.default_admin_socket() == config.admin_socket
    assert 0 in config.admin_uids
    # the client socket's directory must be reachable by other users; L1 (sealed memfds)
    # needs no device and no named IPC
    assert settings["RuntimeDirectoryMode"] == "0755"
    assert settings["PrivateDevices"] == "yes" and "RemoveIPC" not in settings
    # sd_notify, and the descriptor store that keeps L1 across restarts (test_systemd.py)
    assert (settings["Type"], settings["NotifyAccess"]) == ("notify", "main")
    assert int(settings["FileDescriptorStoreMax"]) >= 4096
    assert settings["ExecStart"].split()[0].endswith("/modelshelfd")
    assert float(settings["TimeoutStopSec"]) > config.shutdown_timeout


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    daemon = Path(sys.executable).parent / "modelshelfd"  # verify wants an existing binary
    assert daemon.exists()
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={daemon}", UNIT.read_text())
    (tmp_path / UNIT.name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / UNIT.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr  # warnings count
    # verify exits 0 whatever it finds: its complaints are what this test reads
    (tmp_path / UNIT.name).write_text(text.replace("Type=notify", "Type=notifyy"))
    broken = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / UNIT.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "notifyy" in broken.stderr, broken.stderr


# -- images -------------------------------------------------------------------------------------


def assert_builds_the_kernels(dockerfile: Path) -> None:
    """Two stages on one exact base: the wheel built where a C compiler is (the slim base has
    none: the kernels would silently be missing), installed in the runtime stage, whose build
    fails unless the compiled kernels serve."""
    froms = instruction(dockerfile, "FROM")
    assert len(froms) == 2, froms
    build, runtime = froms
    assert build.split()[1:] == ["AS", "build"], build
    assert build.split()[0] == runtime, froms  # the wheel's ABI is the runtime's
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", runtime), runtime  # exact, pinned below
    runs = instruction(dockerfile, "RUN")
    assert any("apt-get install" in r and "gcc" in r for r in runs), runs
    assert any("pip wheel --no-deps --wheel-dir /wheels ." in r for r in runs), runs
    installs = [r for r in runs if "/wheels/modelshelf-*.whl)[daemon]" in r]
    assert len(installs) == 1 and "k.mode() == 'compiled'" in installs[0], runs
    copies = " ".join(instruction(dockerfile, "COPY"))
    # everything the sdist's build reads (MANIFEST.in, setup.py: without them, no extension)
    for copied in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "client", "daemon"):
        assert copied in copies, (copied, copies)
    assert "--from=build /wheels /wheels" in copies, copies


def test_daemon_image_runs_as_10001_with_system_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    dockerfile = ROOT / "deploy" / "Dockerfile"
    assert_builds_the_kernels(dockerfile)
    assert instruction(dockerfile, "USER") == ["10001:10001"]
    assert instruction(dockerfile, "ENTRYPOINT") == ['["modelshelfd"]']
    config = daemon_config(monkeypatch, IMAGE_ENV)
    assert config.socket == "/run/modelshelf/modelshelf.sock"
    assert config.cache_dir == "/var/cache/modelshelf"
    # the directories exist in the image, owned by the daemon's uid (the socket directory
    # must be: the daemon refuses one that is not its own)
    runs = " ".join(instruction(dockerfile, "RUN"))
    for directory in ("/run/modelshelf", "/var/cache/modelshelf"):
        assert re.search(rf"install -d -o 10001 -g 10001 -m 07[05]{{2}}[^&]*{directory}", runs)
    app = ROOT / "examples" / "app" / "Dockerfile"
    assert_builds_the_kernels(app)
    assert instruction(app, "USER") == ["10002:10002"]
    assert any("serve.py" in c and "publish.py" in c for c in instruction(app, "COPY"))


# -- docker compose -----------------------------------------------------------------------------


COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_app_shares_the_socket_volume_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = COMPOSE["services"]
    daemon, app = services["modelshelfd"], services["app"]
    assert "ipc" not in daemon and "ipc" not in app  # descriptors cross IPC namespaces
    config = daemon_config(monkeypatch, {**IMAGE_ENV, **daemon["environment"]})
    socket_dir = str(Path(config.socket).parent)
    daemon_volumes = dict(v.split(":")[1::-1] for v in daemon["volumes"])  # path -> volume
    app_volumes = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"]}
    assert app_volumes[socket_dir] == daemon_volumes[socket_dir] in COMPOSE["volumes"]
    assert app["environment"]["MODELSHELF_SOCKET"] == config.socket
    uid, gid = (int(x) for x in app["user"].split(":"))
    assert config.allowed("demo", uid, gid)  # publish.py publishes demo/*
    assert config.socket_mode & 0o006 == 0o006  # another uid may connect
    assert daemon_volumes[config.cache_dir] in COMPOSE["volumes"]  # L2 survives restarts
    assert "shm_size" not in daemon  # L1 is not in /dev/shm
    assert parse_size(daemon["mem_limit"].upper()) * L1_SHARE >= config.l1_bytes
    assert app["depends_on"]["modelshelfd"]["condition"] == "service_healthy"
    assert "healthcheck" in daemon and "healthcheck" in app and parse_size(app["mem_limit"].upper())


def test_compose_store_is_minio_with_a_bucket_made_first() -> None:
    services = COMPOSE["services"]
    store = services["modelshelfd"]["environment"]["MODELSHELF_STORE"]
    bucket = re.fullmatch(r"s3://([^/]+)/.*", store)
    assert bucket, store
    assert services["publisher"]["environment"]["MODELSHELF_STORE"] == store
    assert f"mc mb --ignore-existing local/{bucket[1]}" in services["createbucket"]["command"][0]
    for name in ("modelshelfd", "publisher"):
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
        after = services[name]["depends_on"]["createbucket"]["condition"]
        assert after == "service_completed_successfully"
    for service in services.values():
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


# -- kubernetes ---------------------------------------------------------------------------------


def test_daemonset_mounts_host_socket_dir_shm_and_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = k8s("daemonset.yaml")
    toml = only(docs, "ConfigMap", "modelshelfd")["data"]["modelshelfd.toml"]
    spec = only(docs, "DaemonSet", "modelshelfd")["spec"]["template"]["spec"]
    (daemon,) = spec["containers"]
    env = container_env(daemon)
    config_mounts = [m for m in mounts(daemon) if env["MODELSHELF_CONFIG"].startswith(m + "/")]
    assert config_mounts, "MODELSHELF_CONFIG is not under a mounted directory"
    (tmp_path / "modelshelfd.toml").write_text(toml)
    config = daemon_config(
        monkeypatch, {**IMAGE_ENV, **env}, ["--config", str(tmp_path / "modelshelfd.toml")]
    )
    volumes = {v["name"]: v for v in spec["volumes"]}

    def host_path(mount_path: str) -> str:
        return str(volumes[mounts(daemon)[mount_path]["name"]]["hostPath"]["path"])

    socket_dir = str(Path(config.socket).parent)
    assert host_path(socket_dir) == socket_dir
    assert "/dev/shm" not in mounts(daemon)  # L1 is sealed memfds
    assert host_path(config.cache_dir) == config.cache_dir
    # hostPath directories are root's: an init container hands them to the daemon's uid
    uid = spec["securityContext"]["runAsUser"]
    assert uid == 10001  # the image's user
    (init,) = spec["initContainers"]
    assert f"chown {uid}:{uid} {socket_dir} {config.cache_dir}" in init["command"][-1]
    assert "chmod 0755 " + socket_dir in init["command"][-1]
    # shared memory is charged to the daemon's pod, and the daemon caps L1 at L1_SHARE of
    # its limit: the limit lets the configured L1 be used in full
    resources = daemon["resources"]
    limit = memory_bytes(resources["limits"]["memory"])
    assert limit * L1_SHARE >= config.l1_bytes
    assert memory_bytes(resources["requests"]["memory"]) == limit  # evicted last
    assert "cpu" not in resources["limits"]  # a throttled event loop misses its probes
    assert "httpGet" not in daemon["livenessProbe"]  # /healthz is 503 when merely degraded
    assert spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in spec["tolerations"]  # every node, tainted ones too
    assert daemon["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert daemon["readinessProbe"]["httpGet"]["path"] == "/healthz"
    ds = only(docs, "DaemonSet")["spec"]["updateStrategy"]["rollingUpdate"]
    assert not ds.get("maxSurge")  # two daemons cannot share one cache directory

    app_spec = only(docs, "Deployment", "predictor")["spec"]["template"]["spec"]
    (app,) = app_spec["containers"]
    assert container_env(app)["MODELSHELF_SOCKET"] == config.socket
    app_volumes = {v["name"]: v for v in app_spec["volumes"]}
    assert app_volumes[mounts(app)[socket_dir]["name"]]["hostPath"]["path"] == socket_dir
    app_uid, app_gid = (app_spec["securityContext"][k] for k in ("runAsUser", "runAsGroup"))
    assert config.allowed("demo", app_uid, app_gid)
    assert config.socket_mode & 0o006 == 0o006


def test_sidecar_shares_the_socket_dir_and_its_memory_limit_covers_l1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = only(k8s("sidecar.yaml"), "Deployment")["spec"]["template"]["spec"]
    (daemon,) = spec["initContainers"]
    (app,) = spec["containers"]
    assert daemon["restartPolicy"] == "Always"  # a native sidecar: starts first, stops last
    assert "startupProbe" in daemon
    config = daemon_config(monkeypatch, {**IMAGE_ENV, **container_env(daemon)})
    assert container_env(app)["MODELSHELF_SOCKET"] == config.socket
    volumes = {v["name"]: v for v in spec["volumes"]}
    shared = [
        (path, m["name"])
        for path, m in mounts(daemon).items()
        if config.socket.startswith(path + "/")
        and m["name"] in [a["name"] for a in mounts(app).values()]
    ]
    assert len(shared) == 1, "the app must mount the volume holding the daemon's socket"
    path, name = shared[0]
    # an emptyDir is world-writable: the daemon must create the socket's directory itself
    assert "emptyDir" in volumes[name] and Path(config.socket).parent != Path(path)
    assert mounts(app)[path]["name"] == name
    assert "/dev/shm" not in mounts(daemon)  # L1 is sealed memfds, charged to the container
    assert memory_bytes(daemon["resources"]["limits"]["memory"]) * L1_SHARE >= config.l1_bytes
    for container in (daemon, app):  # one uid for both: the daemon's defaults let it in
        assert "runAsUser" not in container.get("securityContext", {})
    assert spec["securityContext"]["runAsUser"] > 0


# -- schemas and pinned images ------------------------------------------------------------------

# Kubernetes versions the manifests must be valid for: the oldest with native sidecars
# (sidecar.yaml's init container with restartPolicy: Always) and the newest the schemas know.
KUBE_VERSIONS = ("1.29", "latest")


def kube_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in k8s(path.name):
            yield path.name, doc


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    """Strict schemas (kubernetes-validate ships Kubernetes' own OpenAPI, as JSON schemas):
    a misspelt or misplaced field is an error, not ignored as a lenient parse would."""
    import kubernetes_validate.utils as kv

    versions = [kv.latest_version() if v == "latest" else v for v in KUBE_VERSIONS]
    for name, doc in kube_documents():
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                where = ".".join(map(str, exc.path))
                pytest.fail(f"{name}: {doc['kind']} invalid for {version} at {where}: {exc}")
    # the validation does catch what a typo does
    docs = k8s("daemonset.yaml")
    daemon = only(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    daemon["resource"] = daemon.pop("resources")
    with pytest.raises(kv.ValidationError):
        kv.validate(only(docs, "DaemonSet"), versions[-1], strict=True)


def test_compose_file_validates_against_the_compose_specification() -> None:
    """The Compose Specification's JSON schema, as check-jsonschema vendors it."""
    import json
    from importlib.resources import files

    import jsonschema

    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, errors
    broken = {**COMPOSE, "services": {**COMPOSE["services"], "x": {"image": "a", "memlimit": 1}}}
    assert any(validator.iter_errors(broken))


BUILT_HERE = {"modelshelfd", "modelshelf-example"}  # deploy/Dockerfile, examples/app/Dockerfile
# an exact release: python:3.11.14-slim-bookworm, minio/minio:RELEASE.2025-04-22T22-12-26Z
EXACT_TAG = re.compile(r"(?:v?\d+\.\d+\.\d+|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)(?:-[\w.-]+)?")


def every_image() -> Iterator[tuple[str, str]]:
    """(where, image) of every image a deployment file names."""
    for path in (ROOT / "deploy" / "Dockerfile", ROOT / "examples" / "app" / "Dockerfile"):
        for base in instruction(path, "FROM"):
            yield path.name, base.split()[0]
    for name, service in COMPOSE["services"].items():
        yield f"docker-compose.yml {name}", service["image"]
    for name, doc in kube_documents():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            yield f"{name} {container['name']}", container["image"]


def test_every_image_is_pinned_to_an_exact_release() -> None:
    seen = list(every_image())
    assert len(seen) >= 10
    for where, image in seen:
        reference, _, digest = image.partition("@")
        repository, colon, tag = reference.rpartition(":")
        assert colon and "/" not in tag, f"{where}: {image} has no tag (that is latest)"
        assert tag != "latest", f"{where}: {image}"
        if digest:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{where}: {image}"
        if repository.rsplit("/", 1)[-1] in BUILT_HERE:
            assert tag == __version__, f"{where}: {image} is built from this version"
        else:
            assert EXACT_TAG.fullmatch(tag), f"{where}: {image} is not an exact release"


# -- release wheels -----------------------------------------------------------------------------


WHEELS = ROOT / ".github" / "workflows" / "wheels.yml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CIBUILDWHEEL = PYPROJECT["tool"]["cibuildwheel"]
NEWEST_PYTHON = (3, 13)  # the newest CPython the release wheels are built for


def workflow(path: Path) -> dict[str, Any]:
    """A GitHub workflow as GitHub reads it: its ``on:`` is the key "on" (YAML 1.1 says True)."""
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def test_wheels_workflow_validates_against_the_github_workflow_schema() -> None:
    """SchemaStore's schema of workflow files, as check-jsonschema vendors it (what
    ``check-jsonschema --builtin-schema vendor.github-workflows`` checks)."""
    import json
    from importlib.resources import files

    import jsonschema

    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "github-workflows.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    doc = workflow(WHEELS)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors
    job = doc["jobs"]["wheels"]
    broken = {**doc, "jobs": {**doc["jobs"], "wheels": {**job, "run-on": job["runs-on"]}}}
    del broken["jobs"]["wheels"]["runs-on"]
    assert any(validator.iter_errors(broken))


def test_wheels_workflow_pins_every_action_to_a_release() -> None:
    jobs = workflow(WHEELS)["jobs"].values()
    uses = [step["uses"] for job in jobs for step in job["steps"] if "uses" in step]
    assert any(use.startswith("pypa/cibuildwheel@") for use in uses), uses
    for use in uses:
        ref = use.partition("@")[2]
        exact = re.fullmatch(r"v\d+\.\d+\.\d+|[0-9a-f]{40}", ref)
        assert exact, f"{WHEELS.name}: {use} is not pinned to a release (vX.Y.Z) or a commit"


def test_release_wheels_cover_every_supported_python_and_platform() -> None:
    requires = re.fullmatch(r">=3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert requires, "requires-python is no longer >=3.N: update [tool.cibuildwheel] build"
    built = sorted(int(b.removeprefix("cp3").removesuffix("-*")) for b in CIBUILDWHEEL["build"])
    assert built == list(range(int(requires[1]), NEWEST_PYTHON[1] + 1)), CIBUILDWHEEL["build"]
    # glibc and musl Linux, and macOS, are skipped by no pattern
    kept = ("manylinux", "musllinux", "macosx", "x86_64", "aarch64")
    for skipped in CIBUILDWHEEL["skip"]:
        assert not any(k in skipped for k in kept), f"skip {skipped!r} drops a release wheel"
    assert set(CIBUILDWHEEL["macos"]["archs"]) == {"x86_64", "arm64"}
    runners = workflow(WHEELS)["jobs"]["wheels"]["strategy"]["matrix"]["os"]
    linux = [r for r in runners if r.startswith("ubuntu")]
    assert any(r.endswith("-arm") for r in linux) and any(not r.endswith("-arm") for r in linux)
    assert any(r.startswith("macos") for r in runners), runners


def test_wheel_smoke_test_fails_a_wheel_without_compiled_kernels() -> None:
    """cibuildwheel runs [tool.cibuildwheel] test-command on every wheel it builds: here it
    passes on the compiled kernels and fails on the numpy runtime (what a wheel whose extension
    was not built would serve)."""
    require("compiled")
    (command,) = CIBUILDWHEEL["test-command"]
    argv = shlex.split(command)
    assert argv[0] == "python"
    env = {**os.environ, **CIBUILDWHEEL["test-environment"]}
    ran = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("compiled "), ran
    env[_kernels.ENV] = "numpy"
    ran = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True)
    assert ran.returncode != 0 and "AssertionError" in ran.stderr, ran


def test_version_names_the_kernels_that_serve() -> None:
    """``modelshelf --version``: how an operator checks what an install serves (operations.md)."""
    for mode in _kernels.MODES:
        if mode == "compiled":
            require(mode)
        env = {**os.environ, _kernels.ENV: mode}
        argv = [sys.executable, "-m", "modelshelf", "--version"]
        ran = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        assert ran.stdout == f"modelshelf {__version__} (kernels: {mode})\n", ran


# -- docs ---------------------------------------------------------------------------------------


DOCS = [
    ROOT / "docs" / "operations.md",
    ROOT / "docs" / "scaling.md",
    ROOT / "docs" / "configuration.md",
]


def test_docs_name_only_real_commands_and_settings(tmp_path: Path) -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    fields = {f"MODELSHELF_{name.upper()}" for name in Config.__dataclass_fields__}
    # the library's kernel switch, and the test suite's requirement of them (configuration.md)
    kernels = {_kernels.ENV, _kernels.THREADS_ENV, "MODELSHELF_REQUIRE_KERNELS"}
    known = fields | {"MODELSHELF_CONFIG", *client_environment, *admin_environment, *kernels}
    files = [*DOCS, KUBE / "README.md", UNIT, ROOT / "docker-compose.yml", *KUBE.glob("*.yaml")]
    files.append(ROOT / "examples" / "app" / "README.md")
    # a command as typed: at a line's start, after a prompt, sudo, `--` or a backtick, or as
    # an exec argv
    command = re.compile(r'(?:^\s*|\$ |sudo |-- |`|\["|"CMD", ")modelshelf"?,? "?([a-z]+)', re.M)
    seen: set[str] = set()
    for path in files:
        text = path.read_text()
        for used in command.findall(text):
            assert used in commands, f"{path.name}: `modelshelf {used}` is not a CLI command"
            seen.add(used)
        for var in re.findall(r"\bMODELSHELF_[A-Z_]+\b", text):
            assert var in known, f"{path.name}: {var} is not a setting"
    assert {"status", "ls", "stats", "prefetch", "evict", "pin", "rm", "publish"} <= seen
    for i, block in enumerate(code_blocks(ROOT / "docs" / "operations.md", "toml")):
        path = tmp_path / f"{i}.toml"
        path.write_text(block)
        tomllib.loads(block)
        load_config(["--config", str(path), "--l1-bytes", "1G", "--l2-bytes", "1G"], {})


def test_scaling_examples_hash_on_the_header_the_example_app_reads() -> None:
    scaling = ROOT / "docs" / "scaling.md"
    (envoy,) = (yaml.safe_load(b) for b in code_blocks(scaling, "yaml"))
    (cluster,) = envoy["static_resources"]["clusters"]
    assert cluster["lb_policy"] == "RING_HASH"
    manager = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    (route,) = manager["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["cluster"] == cluster["name"]
    header = route["route"]["hash_policy"][0]["header"]["header_name"]
    (nginx,) = code_blocks(scaling, "nginx")
    assert f"hash $http_{header.replace('-', '_')} consistent;" in nginx
    serve = (ROOT / "examples" / "app" / "serve.py").read_text()
    assert f'self.headers.get("{header.title()}"' in serve
    assert "location = /predict" in nginx and route["match"]["path"] == "/predict"


def test_yaml_files_parse() -> None:
    for path in [ROOT / "docker-compose.yml", *KUBE.glob("*.yaml")]:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs, path
        if path.parent == KUBE:
            for doc in docs:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), path
    assert os.path.isfile(KUBE / "README.md")


# -- the example application ---------------------------------------------------------------------


def _example(name: str) -> Any:
    """Import examples/app/<name>.py as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples/app" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_publisher_publishes_models_that_predict_like_sklearn(tmp_path: Path) -> None:
    import numpy as np

    import modelshelf
    from modelshelf.store import Store

    publish = _example("publish.py")
    url = (tmp_path / "store").as_uri()
    publish.main(["--store", url])
    publish.main(["--store", url])  # a second run publishes the next versions
    store = Store(url)
    for key, estimator in publish.models().items():
        namespace, name = key.split("/")
        assert store.versions(namespace, name) == [1, 2]
        info = store.ref(namespace, name, 2)
        model = modelshelf.load(bytes(store.get_image(info.digest, info.size)))
        X = np.random.default_rng(0).uniform(0, 1, (5, model.n_features_in_))
        if hasattr(estimator, "predict_proba"):
            np.testing.assert_array_equal(model.predict(X), estimator.predict(X))
            np.testing.assert_allclose(model.predict_proba(X), estimator.predict_proba(X))
        else:
            np.testing.assert_allclose(model.predict(X), estimator.predict(X), rtol=1e-9)


def test_example_server_answers_predictions_and_maps_errors_to_statuses() -> None:
    import json
    import threading
    import urllib.error
    import urllib.request
    from http.server import ThreadingHTTPServer

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import modelshelf

    X = np.random.default_rng(1).standard_normal((40, 3))
    clf = LogisticRegression().fit(X, np.where(X[:, 0] > 0, "yes", "no"))
    model = modelshelf.load(modelshelf.compile(clf))

    class Shelf:  # the part of modelshelf.Client the server uses
        def model(self, ref: str) -> modelshelf.Model:
            if ref == "demo/clf":
                return model
            if ref == "demo/secret":
                raise modelshelf.AccessDenied("uid 1 may not use namespace 'demo'")
            if ref == "demo/away":
                raise modelshelf.DaemonUnavailable("no daemon")
            raise modelshelf.ModelNotFound(f"no model {ref}")

    serve = _example("serve.py")
    serve.Handler.client = Shelf()
    server = ThreadingHTTPServer(("127.0.0.1", 0), serve.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def post(ref: str, body: object) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_port}/predict",
            data=json.dumps(body).encode(),
            headers={"X-Model": ref} if ref else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    try:
        status, reply = post("demo/clf", {"instances": X[:3].tolist()})
        assert status == 200
        assert reply["predictions"] == clf.predict(X[:3]).tolist()
        assert reply["classes"] == ["no", "yes"]
        np.testing.assert_allclose(reply["probabilities"], clf.predict_proba(X[:3]), rtol=1e-9)
        assert post("demo/nope", {"instances": [[1, 2, 3]]})[0] == 404
        assert post("demo/secret", {"instances": [[1, 2, 3]]})[0] == 403
        assert post("demo/away", {"instances": [[1, 2, 3]]})[0] == 503
        assert post("demo/clf", {"instances": [[1, 2]]})[0] == 400  # feature count
        assert post("demo/clf", {"rows": [[1, 2, 3]]})[0] == 400
        assert post("", {"instances": [[1, 2, 3]]})[0] == 400
    finally:
        server.shutdown()
        server.server_close()
