"""The command line's comforts (issue 12, point 5): the commands listed with no arguments, global
options anywhere, JSON errors, exit statuses, ``models``, publishing that streams and skips
unchanged bytes, .safetensors files, progress bars, shell completion, sizes and durations in
units. No daemon is needed: what goes through one is in tests/integration/test_cli.py."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import errors
from modelshelf.cli import EXIT_STATUSES, build_parser
from modelshelf.cli._output import duration, size
from modelshelf.store import Store

CLI = [sys.executable, "-m", "modelshelf.cli"]  # the code under test (PYTHONPATH)


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MODELSHELF_ADMIN_SOCKET": "/nonexistent/admin.sock", **(env or {})},
    )  # fmt: skip


def error_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON error a --json command printed: the only document on stdout."""
    document = json.loads(proc.stdout)
    assert set(document) == {"error"}
    error: dict[str, Any] = document["error"]
    assert set(error) == {"type", "code", "message", "exit_status"}
    assert error["exit_status"] == proc.returncode
    return error


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "w.msi"
    path.write_bytes(modelshelf.compile_tensors({"w": np.arange(1000.0)}))
    return path


# -- the parser -----------------------------------------------------------------------------------


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_no_arguments_lists_the_commands_and_is_a_usage_error() -> None:
    proc = run()
    assert proc.returncode == 2 and proc.stdout == ""
    for name in _commands():
        assert f"\n    {name} " in proc.stderr  # each with its one-line description
    assert "exit statuses:" in proc.stderr
    as_json = run("--json")
    assert as_json.returncode == 2 and error_of(as_json)["code"] == "usage"


def test_every_command_and_argument_is_described() -> None:
    commands = _commands()
    assert {"models", "completion", "publish", "status", "ls", "stats", "prefetch"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            assert action.help, f"{name} {action.dest} has no help"


def test_help_lists_the_exit_statuses() -> None:
    text = build_parser().format_help()
    for status, meaning in EXIT_STATUSES.items():
        assert f"  {status:<4} {meaning}" in text
    # every error class's status is one of those documented
    classes = [getattr(errors, name) for name in errors.__all__]
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, errors.ModelshelfError):
            assert cls.exit_status in EXIT_STATUSES, cls


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "--admin-socket", "/nope.sock", "status"],
        ["status", "--json", "--admin-socket", "/nope.sock"],
        ["--admin-socket", "/nope.sock", "status", "--json"],
        ["--json", "stats", "--admin-socket", "/nope.sock"],
    ],
)
def test_global_options_before_or_after_the_command(args: list[str]) -> None:
    proc = run(*args)
    error = error_of(proc)
    assert proc.returncode == 6 and error["type"] == "DaemonUnavailable"
    assert error["code"] == "unavailable" and "/nope.sock" in error["message"]
    assert proc.stderr == ""


def test_text_errors_are_one_line_on_stderr() -> None:
    proc = run("--admin-socket", "/nope.sock", "ls")
    assert proc.returncode == 6 and proc.stdout == ""
    assert proc.stderr.startswith("modelshelf ls: error: no modelshelf daemon answers")
    assert len(proc.stderr.splitlines()) == 1


def test_usage_errors_in_json(tmp_path: Path) -> None:
    unknown = run("--json", "stauts")
    assert unknown.returncode == 2 and "invalid choice: 'stauts'" in error_of(unknown)["message"]
    missing = run("publish", "ns/m", "--json")  # FILE missing: argparse's own error
    assert missing.returncode == 2 and error_of(missing)["type"] == "UsageError"
    versioned = run("publish", "ns/m@3", tmp_path / "x", "--json")
    assert versioned.returncode == 2 and "assigned by publish" in error_of(versioned)["message"]
    rm = run("rm", "ns/m", "--json")
    assert rm.returncode == 2 and error_of(rm)["code"] == "usage"
    no_file = run("publish", "ns/m", tmp_path / "absent.msi", "--store", "file:///x", "--json")
    assert no_file.returncode == 2 and error_of(no_file)["code"] == "bad_input"


# -- publish and models on a store ----------------------------------------------------------------


def test_publish_says_when_nothing_changed(tmp_path: Path, image_file: Path) -> None:
    url = (tmp_path / "store").as_uri()
    first = json.loads(run("publish", "ns/w", image_file, "--store", url, "--json").stdout)
    assert (first["version"], first["unchanged"], first["store"]) == (1, False, url)
    again = run("--json", "publish", "ns/w", image_file, "--store", url)
    assert again.returncode == 0
    assert json.loads(again.stdout) == {**first, "unchanged": True}
    text = run("publish", "ns/w", image_file, "--store", url)
    assert text.returncode == 0 and text.stdout.startswith("unchanged: ns/w@1 already holds")
    forced = json.loads(
        run("publish", "ns/w", image_file, "--store", url, "--force", "--json").stdout
    )
    assert (forced["version"], forced["unchanged"]) == (2, False)
    other = tmp_path / "v.msi"
    other.write_bytes(modelshelf.compile_tensors({"w": np.arange(1001.0)}))
    changed = run("publish", "ns/w", other, "--store", url)
    assert changed.stdout.startswith("published ns/w@3 (") and "KiB)" in changed.stdout
    assert Store(url).versions("ns", "w") == [1, 2, 3]


def test_publish_and_compile_take_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    weights = {"emb": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4)}
    src = tmp_path / "weights.safetensors"
    save_file(weights, str(src), metadata={"source": "unit-test"})
    out = tmp_path / "weights.msi"
    compiled = run("compile", src, "-o", out)
    assert compiled.returncode == 0, compiled.stderr
    assert "(safetensors)" in compiled.stdout and "tensors" in compiled.stdout
    model = modelshelf.load(out)
    assert np.array_equal(model.tensors["emb"], weights["emb"])
    report = json.loads(run("compile", src, "-o", out, "--json").stdout)
    assert report["compiled"] == "safetensors" and report["kind"] == "tensors"
    assert report["size"] == out.stat().st_size and report["arrays"] == 2
    url = (tmp_path / "store").as_uri()
    published = run("publish", "ns/emb", src, "--store", url, "--json")
    assert published.returncode == 0, published.stderr
    info = Store(url).resolve(modelshelf.names.parse_ref("ns/emb"))
    assert info.version == 1 and json.loads(published.stdout)["digest"] == info.digest
    # compiled again from the same file: the same image (created = the file's time)
    again = run("publish", "ns/emb", src, "--store", url, "--json")
    assert json.loads(again.stdout)["unchanged"] is True
    # a safetensors file without its suffix is recognised by its header
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(src.read_bytes())
    other = run("publish", "ns/bin", renamed, "--store", url, "--json")
    assert other.returncode == 0, other.stderr
    assert Store(url).ref("ns", "bin", 1).size == info.size


def test_models_lists_a_store(tmp_path: Path, image_file: Path) -> None:
    store = Store((tmp_path / "store").as_uri())
    store.publish("acme", "churn", image_file.read_bytes())
    store.publish("acme", "churn", modelshelf.compile_tensors({"w": np.zeros(300_000)}))
    store.publish("other", "m", image_file.read_bytes())
    rows = json.loads(run("models", "--store", store.url, "--json").stdout)
    assert [r["model"] for r in rows] == ["acme/churn", "other/m"]
    churn = rows[0]
    assert (churn["versions"], churn["latest"]) == (2, 2)
    assert churn["digest"] == store.ref("acme", "churn", 2).digest
    assert churn["size"] == store.ref("acme", "churn", 2).size and churn["published"]
    text = run("models", "acme/*", "--store", store.url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "LATEST", "VERSIONS", "SIZE", "PUBLISHED", "DIGEST"]
    assert len(lines) == 2 and lines[1].split()[:5] == ["acme/churn", "@2", "2", "2.3", "MiB"]
    assert "UTC" in lines[1]
    none = run("models", "zzz/*", "--store", store.url, "--json")
    assert none.returncode == 0 and json.loads(none.stdout) == []


# -- progress bars --------------------------------------------------------------------------------


def test_progress_bar_only_when_asked_off_a_terminal(tmp_path: Path, image_file: Path) -> None:
    url = (tmp_path / "store").as_uri()
    quiet = run("publish", "ns/a", image_file, "--store", url)  # stderr is a pipe: no bar
    assert quiet.returncode == 0 and quiet.stderr == ""
    forced = run("--progress", "publish", "ns/b", image_file, "--store", url)
    assert forced.returncode == 0 and "100%" in forced.stderr and "ns/b" in forced.stderr
    as_json = run("publish", "ns/c", image_file, "--store", url, "--progress", "--json")
    assert as_json.stderr == "" and json.loads(as_json.stdout)["version"] == 1


def test_progress_without_tqdm_says_so_once(tmp_path: Path, image_file: Path) -> None:
    script = (
        "import sys\nsys.modules['tqdm'] = None\nfrom modelshelf.cli import main\n"
        f"sys.exit(main(['publish', 'ns/a', {str(image_file)!r}, '--store', "
        f"{(tmp_path / 's').as_uri()!r}, '--progress']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("no progress bar without tqdm") == 1
    assert "published ns/a@1" in proc.stdout


# -- completion -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    proc = run("completion", shell)
    assert proc.returncode == 0, proc.stderr
    for word in ("modelshelf", "publish", "models", "prefetch", "--admin-socket", "--force"):
        assert word in proc.stdout, word
    as_json = json.loads(run("completion", shell, "--json").stdout)
    assert as_json["shell"] == shell and as_json["script"] == proc.stdout


def test_bash_completes_a_command(tmp_path: Path) -> None:
    script = tmp_path / "modelshelf.bash"
    script.write_text(run("completion", "bash").stdout)
    line = "modelshelf mod"
    probe = (
        f"source {script}; COMP_WORDS=(modelshelf mod); COMP_CWORD=1; COMP_LINE={line!r}; "
        "COMP_POINT=${#COMP_LINE}; _shtab_modelshelf modelshelf mod modelshelf; "
        'echo "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["models"]


def test_completion_without_shtab_names_the_extra() -> None:
    script = (
        "import sys\nsys.modules['shtab'] = None\nfrom modelshelf.cli import main\n"
        "sys.exit(main(['completion', 'bash']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1 and "pip install 'modelshelf[cli]'" in proc.stderr
    bad = run("completion", "tcsh")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


# -- units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1000, "1000 B"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB"), (3 << 30, "3.0 GiB"),
     (None, "-")],
)  # fmt: skip
def test_sizes_in_units(n: int | None, text: str) -> None:
    assert size(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.004, "4 ms"), (0.25, "250 ms"), (4.21, "4 s"), (42, "42 s"), (200, "3.3 min"),
     (7260, "2.0 h"), (3 * 86400, "3.0 d"), (None, "-")],
)  # fmt: skip
def test_durations_in_units(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text
