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
# Install (again) when the extras or the build files changed since the last install with
# these extras, or when the compiled kernels' sources are not those the extension in place was
# built from (the editable install builds the C extension in place; a checkout that goes back
# to sources installed before must rebuild too: the extension is the last one built).
deps=$(cat pyproject.toml setup.py | cksum | cut -d' ' -f1)
kernels=$(cat client/modelshelf/_kernels/*.[ch] | cksum | cut -d' ' -f1)
stamp=".venv/.modelshelf-$(echo "$EXTRAS" | tr ',' '-')-$deps"
built=.venv/.modelshelf-kernels
if [ ! -f "$stamp" ] || [ "$(cat "$built" 2>/dev/null)" != "$kernels" ]; then
  echo "==> installing modelshelf[$EXTRAS] into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -e ".[$EXTRAS]"
  touch "$stamp"
  echo "$kernels" > "$built"
fi
