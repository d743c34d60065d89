#!/usr/bin/env bash
# Set up (once) and run the whole test suite: lint, types, then every test.
EXTRAS=all,dev
source "$(dirname "$0")/_env.sh"
# one command a line: under set -e a failure inside an && list would not stop the script
echo "==> ruff"
.venv/bin/ruff check client daemon tests bench examples
.venv/bin/ruff format --check client daemon tests bench examples
echo "==> mypy"; .venv/bin/mypy
echo "==> pytest"; .venv/bin/python -m pytest "$@"
