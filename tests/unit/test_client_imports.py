"""The application side of the shelf stays light: ``modelshelf.client`` imports numpy and the
standard library only (no obstore, posix_ipc, psutil or the daemon package)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
before = set(sys.modules)
import modelshelf.client, modelshelf.admin, modelshelf.cli._shelf
print(json.dumps(sorted({n.split(".")[0] for n in set(sys.modules) - before})))
"""


def test_client_imports_nothing_heavy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"obstore", "posix_ipc", "psutil", "modelshelfd", "sklearn", "joblib"}
    assert "modelshelf" in loaded
