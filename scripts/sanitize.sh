#!/usr/bin/env bash
# Build the compiled kernels with AddressSanitizer and UndefinedBehaviorSanitizer and run, on
# that build, the tests that drive them: the kernel tests, the tree, text, linear and MLP
# runtimes', the exactness matrix's compiled cases (trees, text, linear models, MLPs) and the
# adversarial tests that load or predict trees (split over threads too) or dense models or
# count text through hostile string tables (the encoders' and tabular
# inputs' never reach the kernels). Any bad read, overflow
# or undefined behaviour aborts the run. Needs gcc or clang with their sanitizer runtimes, and
# .venv (scripts/test.sh creates it). Arguments go to both pytest runs (a -k that selects
# nothing in one of them is not an error).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv: run scripts/test.sh first" >&2; exit 1; }
CC=${CC:-cc}
out=$(mktemp -d "${TMPDIR:-/tmp}/modelshelf-sanitize.XXXXXX")
# pytest captures stderr, and an abort loses it: the sanitizers write their reports to files,
# printed on the way out.
trap 'cat "$out"/report.* 2>/dev/null || true; rm -rf "$out"' EXIT

# A copy of the client package whose extension is the sanitized build, first on the path.
cp -r client "$out/client"
find "$out/client" -name '*.so' -delete
read -r py_include np_include suffix < <("$PY" -c '
import sysconfig, numpy
print(sysconfig.get_paths()["include"], numpy.get_include(), sysconfig.get_config_var("EXT_SUFFIX"))')
native="$out/client/modelshelf/_kernels/_native$suffix"
echo "==> building the kernels with -fsanitize=address,undefined"
"$CC" -shared -fPIC -std=c11 -O1 -g -fno-omit-frame-pointer -ffp-contract=off \
  -fsanitize=address,undefined -fno-sanitize-recover=all -pthread \
  -I"$py_include" -I"$np_include" client/modelshelf/_kernels/*.c -o "$native"
# grep reads all of nm's output: with -q it may exit first, and pipefail sees nm's SIGPIPE
nm -D "$native" | grep __asan_report_load >/dev/null || { echo "$native is not instrumented" >&2; exit 1; }

# Python itself is not instrumented: the ASan runtime must be loaded first, and libstdc++ with
# it (ASan intercepts C++ exceptions, which XGBoost throws while it fits). CPython never frees
# some memory at exit, so leak detection would only report that. Hostile images ask numpy for
# absurd allocations: they must fail with MemoryError, as without ASan, not abort.
LD_PRELOAD="$("$CC" -print-file-name=libasan.so) $("$CC" -print-file-name=libstdc++.so)"
export LD_PRELOAD
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:log_path=$out/report"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$out/report"
export PYTHONPATH="$out/client:$PWD/daemon"
export MODELSHELF_REQUIRE_KERNELS=1
"$PY" -c '
import sys
from modelshelf import _kernels
built = _kernels.BUILT
assert built is not None and built.__file__ == sys.argv[1], built
print("==> kernels:", built.__file__)' "$native"
echo "==> pytest (kernels, tree, text and dense runtimes, adversarial images, trees, text, dense)"
status=0
"$PY" -m pytest -p no:cacheprovider -q tests/unit/test_kernels.py tests/unit/test_kernels_threads.py \
  tests/unit/runtime/test_trees.py \
  tests/unit/test_kernels_text.py tests/unit/runtime/test_text.py tests/adversarial/test_text_kernels.py \
  tests/unit/test_kernels_dense.py tests/unit/runtime/test_linear.py tests/unit/runtime/test_neural.py \
  tests/unit/runtime/test_onehot_sparse.py tests/unit/runtime/test_text_sparse.py \
  tests/adversarial/test_dense_kernels.py \
  tests/unit/runtime/test_input_fast.py \
  tests/adversarial/test_tree_kernels.py tests/adversarial/test_boosters.py \
  tests/adversarial/test_hostile.py tests/adversarial/test_mutations.py \
  tests/unit/image/test_reader_compiled.py \
  tests/adversarial/test_family_specs.py "$@" || status=$?
[ "$status" -eq 0 ] || { [ "$status" -eq 5 ] && [ $# -gt 0 ]; } || exit "$status"  # 5: -k chose none
echo "==> pytest (exactness matrix, tree, text, linear and MLP cases on the compiled kernels)"
status=0
"$PY" -m pytest -p no:cacheprovider -q tests/unit/convert/test_exactness.py -k compiled "$@" ||
  status=$?
[ "$status" -eq 0 ] || { [ "$status" -eq 5 ] && [ $# -gt 0 ]; } || exit "$status"
