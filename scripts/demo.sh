#!/usr/bin/env bash
# Set up (once) and run the demo: compile models of several families, then compare
# load + first prediction against joblib. Arguments go to examples/demo.py (--runs, --out).
EXTRAS=convert
source "$(dirname "$0")/_env.sh"
.venv/bin/python examples/demo.py "$@"
