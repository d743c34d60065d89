#!/usr/bin/env bash
# Set up (once) and run the whole test suite: lint, types, then every test.
EXTRAS=all,dev
source "$(dirname "$0")/_env.sh"
# one command a line: under set -e a failure inside an && list would not stop the script
echo "==> ruff"
.venv/bin/ruff check client daemon tests bench examples
.venv/bin/ruff format --check client daemon tests bench examples
echo "==> mypy"; .venv/bin/mypy
# the compiled kernels must have been built: their tests fail rather than skip without them
export MODELSHELF_REQUIRE_KERNELS=1
echo "==> pytest"; .venv/bin/python -m pytest "$@"
