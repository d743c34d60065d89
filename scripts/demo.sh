#!/usr/bin/env bash
# Set up (once) and run the main demo: start modelshelfd on its embedded default store (a local
# directory), publish a few hundred models, and have several client processes switch among them,
# printing acquire latency per tier and the memory the clients hold.
# Arguments go to `python -m modelshelfd.demo` (see --help). For the image-only comparison
# against joblib, run: .venv/bin/python examples/demo.py
EXTRAS=convert,daemon
source "$(dirname "$0")/_env.sh"
.venv/bin/python -m modelshelfd.demo "$@"
