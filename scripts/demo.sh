#!/usr/bin/env bash
# Set up (once) and run the demo: compile models of several families, then compare
# load + first prediction against joblib.
EXTRAS=convert
source "$(dirname "$0")/_env.sh"
.venv/bin/python -m modelshelf.demo "$@"
