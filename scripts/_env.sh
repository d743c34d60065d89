# Sourced by the scripts: find Python 3.11+, create .venv once, install the extras asked for.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY=$candidate; break
    fi
  done
fi
[ -n "$PY" ] || { echo "modelshelf needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# Install (again) only when the extras, the build files or the compiled kernels' sources changed
# since the last install (the editable install builds the C extension in place).
sources=$(cat pyproject.toml setup.py client/modelshelf/_kernels/*.[ch] | cksum | cut -d' ' -f1)
stamp=".venv/.modelshelf-$(echo "$EXTRAS" | tr ',' '-')-$sources"
if [ ! -f "$stamp" ]; then
  echo "==> installing modelshelf[$EXTRAS] into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -e ".[$EXTRAS]"
  touch "$stamp"
fi
