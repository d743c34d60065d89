"""Which kernels predict: the compiled ones (the C extension ``_native``, built from the C
files next to this module) or the numpy runtime, the readable reference they mirror.

The extension is optional: built from the source distribution with the system compiler when
one is there (setup.py), absent otherwise, and then the numpy runtime serves alone, as this
module says once at import in debug logging. ``MODELSHELF_KERNELS=numpy`` in the environment,
read once at import, forces the numpy path even when the extension is built.

``MODELSHELF_THREADS`` (default 1), read once at import, or ``set_threads(n)`` (also
``modelshelf.set_threads``), lets one call of the compiled tree kernel split a large batch's rows
over ``n`` threads, and one call of the dense kernel (linear models) split the row blocks of its
product (results are one thread's to the bit). One thread is the default because a
node full of worker processes is where modelshelf runs: there a second thread only waits for a
core that another process needs.

The runtime asks this module for a family's compiled kernel at load (``trees``,
``vocabulary``, ``hashing``, ``dense``, ``dense_forward``); ``None`` means numpy serves that
model: no extension, the variable, or a layout the kernel does not take (another dtype, a
feature it lacks), never an error. Compiled kernels give the numpy path's results to the last
bit; the exactness matrix runs tree, text, linear-model and MLP cases through both.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "BUILT",
    "ENV",
    "LINKS",
    "MODES",
    "THREADS_ENV",
    "active",
    "all_finite",
    "dense",
    "dense_forward",
    "float_input",
    "get_threads",
    "hashing",
    "image_arrays",
    "mode",
    "set_threads",
    "sigmoid",
    "trees",
    "use",
    "vocabulary",
    "weigh",
    "weighs",
]

ENV = "MODELSHELF_KERNELS"
MODES = ("compiled", "numpy")
THREADS_ENV = "MODELSHELF_THREADS"
MAX_THREADS = 256

_log = logging.getLogger(__name__)


#: The calls this facade makes of the extension (kernels.h's MSK_INTERFACE): an extension built
#: from another checkout (a ``git pull`` without a rebuild) answers other calls, and is refused.
INTERFACE = 5


def _import_native() -> tuple[ModuleType | None, str]:
    try:
        native = importlib.import_module(f"{__name__}._native")
    except ImportError as exc:  # not built (no compiler at install), or built for another ABI
        return None, f"not built ({exc})"
    found = getattr(native, "INTERFACE", None)
    if found != INTERFACE:
        _log.warning(
            "modelshelf kernels: the compiled extension %s was built from another version of "
            "modelshelf (interface %s, this code calls interface %d): the numpy runtime serves "
            "(same results, slower); rebuild it with 'pip install -e .' or "
            "'python setup.py build_ext --inplace'",
            native.__file__, found, INTERFACE,
        )  # fmt: skip
        return None, f"stale (interface {found}, expected {INTERFACE})"
    return native, ""


#: The compiled extension, or None when it was not built, does not import or is stale.
BUILT, _why = _import_native()
_wanted = os.environ.get(ENV, "").strip().lower() or "compiled"
if _wanted not in MODES:
    _log.warning("%s=%r is not one of %s: using the default", ENV, _wanted, "|".join(MODES))
    _wanted = "compiled"
_active: ModuleType | None = BUILT if _wanted == "compiled" else None
if BUILT is None:
    _log.debug("modelshelf kernels: numpy (the compiled extension is %s)", _why)
elif _active is None:
    _log.debug("modelshelf kernels: numpy (%s=numpy)", ENV)
else:
    _log.debug("modelshelf kernels: compiled (%s)", BUILT.__file__)


def _threads_from_env() -> int:
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        _log.warning(
            "%s=%r is not a whole number from 1 to %d: using 1", THREADS_ENV, value, MAX_THREADS
        )
        return 1
    return n


_threads = _threads_from_env()


def get_threads() -> int:
    """The threads one call of a compiled tree or linear kernel may use for a large batch."""
    return _threads


def set_threads(n: int) -> None:
    """Let one call of a compiled tree kernel split a large batch's rows over ``n`` threads,
    and one call of a linear model's dense kernel the row blocks of its product (1 to 256;
    default 1, or ``MODELSHELF_THREADS``). It takes effect at the next call, for models already
    loaded too. Small batches stay on the calling thread (a linear model's below two of
    ``_math.matmul``'s blocks; an MLP's layers stay on one thread), and results are the same to
    the bit whatever ``n``. Keep 1 on a node busy with worker processes: a second
    thread then waits for a core."""
    global _threads
    # np.int64(2) is a count too; a bool, a float or a string is not (ValueError, as always)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_THREADS:
        raise ValueError(
            f"threads must be a whole number from 1 to {MAX_THREADS}, found {type(n).__name__} "
            f"{n!r}"
        )
    _threads = int(n)


def active() -> ModuleType | None:
    """The compiled extension if it serves models loaded from now on, else None."""
    return _active


def mode() -> str:
    """``"compiled"`` or ``"numpy"``: which kernels models loaded from now on use."""
    return "compiled" if _active is not None else "numpy"


def use(name: str) -> None:
    """Switch the kernels of models loaded from now on (tests and benchmarks compare both;
    models already loaded keep theirs). ``"compiled"`` needs the extension built."""
    global _active
    if name not in MODES:
        raise ValueError(f"kernels must be one of {MODES}, not {name!r}")
    if name == "compiled" and BUILT is None:
        raise RuntimeError(f"the compiled kernels are {_why}")
    _active = BUILT if name == "compiled" else None


def _image_reader(native: ModuleType | None) -> Any:
    """The extension's image reader if it reads the layout and limits of image/_format.py."""
    from ..image import _format as f

    read = getattr(native, "image_arrays", None)
    layout = getattr(native, "IMAGE_FORMAT", None)
    if read is None or not isinstance(layout, dict):
        return None
    differ = sorted(k for k, v in layout.items() if getattr(f, k, None) != v)
    if differ:
        _log.debug("modelshelf kernels: the Python image reader serves (%s differ)", differ)
        return None
    return read


_image_arrays = _image_reader(BUILT)

#: (image_size, major, minor, checksum, manifest_offset, manifest_length, arrays)
ImageRead = tuple[int, int, int, int, int, int, dict[str, np.ndarray]]
#: ``view -> ImageRead``, or None: the Python reader serves (image.c)
ImageArrays = Callable[[memoryview], ImageRead | None]


def image_arrays() -> ImageArrays | None:
    """The compiled reader of an image's header and array table (``image_arrays``, image.c),
    or None: image/_reader.py reads them (the numpy path, no extension, or one built for
    another layout). It reads only images it finds valid, as the same read-only views."""
    return _image_arrays if _active is not None else None


#: ``(X, n_features, allow_nan[, within_float32]) -> view or None``: a prediction input's
#: common case (input.c).
FloatInput = Callable[..., "np.ndarray | None"]


def float_input() -> FloatInput | None:
    """The compiled check of a prediction input's common case (``float_input``, input.c):
    a read-only view of an input that is valid as it is, None for "the Python checks decide";
    or None itself: the numpy path (runtime/_input.py ``ready_float64``) checks. An extension
    built before input.c (a stale in-place build) has none: None too."""
    return getattr(_active, "float_input", None)


def all_finite() -> Callable[[np.ndarray, bool], bool] | None:
    """The compiled ``check_finite`` common case (``all_finite``, input.c): True when an
    array holds no infinity (nor NaN unless allowed), False for "count and decide"; or None."""
    return getattr(_active, "all_finite", None)


def trees(
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    missing: np.ndarray | None,
    roots: np.ndarray,
    groups: list[int],
    leaf_values: np.ndarray | None,
    base: np.ndarray | None,
    depth: int,
    n_features: int = -1,
    input_cast: str = "float64",
) -> Any | None:
    """A forest's compiled sum kernel (``Trees``, trees.c), or None: numpy serves it.
    ``n_features`` and ``input_cast`` enable ``raw`` (inputs cast in C)."""
    native = _active
    if native is None:
        return None
    out_dtype = threshold.dtype if leaf_values is None else leaf_values.dtype
    if base is not None:
        if base.dtype.kind not in "fiu":
            return None
        if base.dtype != out_dtype:  # the image's own array as it is, if no cast is needed
            with np.errstate(all="ignore"):  # as the numpy path's assignment into its sums casts
                base = base.astype(out_dtype)
    try:
        return native.Trees(
            feature,
            threshold,
            child,
            missing,
            roots,
            groups,
            leaf_values,
            base,
            depth,
            n_features=n_features,
            input32=input_cast == "float32",
        )
    except (TypeError, ValueError):  # dtypes or layout it does not take: numpy reads any
        return None


def sigmoid() -> Callable[[np.ndarray, np.ndarray], None] | None:
    """The compiled binary sigmoid link (``sigmoid(raw, out)``, link.c: raw (n, 1) float32 or
    float64, out (n, 2) of its dtype), or None: numpy computes it."""
    native = _active
    if native is None:
        return None
    link: Callable[[np.ndarray, np.ndarray], None] = native.sigmoid
    return link


#: ``(features, lengths) -> (indptr, indices, values, nnz)``: a text vectorizer's counts kernel.
TextCounts = Callable[[list[str], np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, int]]


def vocabulary(terms: np.ndarray, runs: np.ndarray, columns: np.ndarray) -> TextCounts | None:
    """A vocabulary table's compiled counts (``Vocab.counts``, text.c), or None: numpy."""
    native = _active
    if native is None:
        return None
    try:
        counts: TextCounts = native.Vocab(terms, runs, columns).counts
    except (TypeError, ValueError):  # dtypes it does not take (the runs were checked at load)
        return None
    return counts


def hashing(n_features: int, alternate_sign: bool) -> TextCounts | None:
    """A hashing vectorizer's compiled counts (``hashed_counts``, text.c), or None: numpy."""
    native = _active
    if native is None:
        return None
    hashed = native.hashed_counts

    def counts(
        features: list[str], lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        return hashed(features, lengths, n_features, alternate_sign)

    return counts


_NORMS = {None: 0, "l1": 1, "l2": 2}


def weighs(dtype: Any, idf: np.ndarray | None = None) -> bool:
    """Whether ``weigh`` takes counts of ``dtype`` and that idf (float data, float64 idf)."""
    return (
        BUILT is not None
        and np.dtype(dtype) in (np.float64, np.float32)
        and (idf is None or (idf.dtype == np.float64 and idf.ndim == 1))
    )


def weigh(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    idf: np.ndarray | None,
    norm: str | None,
) -> None:
    """CSR ``data`` (int64 ``indices`` and ``indptr``) times ``idf`` then row-normalised, in
    place (``weigh``, text_weigh.c): only on what a compiled counts kernel returned."""
    assert BUILT is not None
    if idf is not None:
        idf = np.ascontiguousarray(idf)
    BUILT.weigh(data, indices, indptr, idf, _NORMS[norm])


#: What follows a dense kernel's affine map, by name: dense.c's link numbers. "sigmoid2" is
#: _math.expit of one score column stacked as [1 - p, p]; the others are in place.
LINKS = {"none": 0, "softmax": 1, "expit": 2, "tanh": 3, "relu": 4, "exp": 5, "sigmoid2": 6}

#: ``(X, pair) -> array or None``: a compiled dense forward pass (``pair``: one output ``p``
#: as the columns ``[1 - p, p]``); None: the numpy path serves this call.
DenseCall = Callable[..., "np.ndarray | None"]

_dense_checked = False


def _dense_native() -> ModuleType | None:
    """The extension if numpy's loops that the dense kernel calls were found (said once)."""
    global _dense_checked
    native = _active
    if native is None:
        return None
    if not native.dense_ready():
        if not _dense_checked:
            _log.debug("modelshelf kernels: no dense kernel (numpy's float64 loops not found)")
        _dense_checked = True
        return None
    return native


def dense(W: np.ndarray, b: np.ndarray, cells: int, min_rows: int) -> Any | None:
    """``X @ W + b`` and a link (``Dense.affine(X, LINKS[name])``, dense.c) in
    ``_math.matmul``'s blocks (``cells``, ``min_rows``), or None: numpy serves this model (no
    extension, the variable, arrays other than float64)."""
    native = _dense_native()
    if native is None:
        return None
    try:
        return native.Dense(W, b, cells, min_rows)
    except (TypeError, ValueError):  # dtypes or layouts it does not take: numpy reads any
        return None


def dense_forward(
    layers: list[tuple[np.ndarray, np.ndarray]], hidden: str, output: str, cells: int, min_rows: int
) -> DenseCall | None:
    """An MLP's forward pass, ``(coef, intercept)`` per layer, the hidden and the output links
    by name (``dense_forward``, dense.c), or None: numpy serves this model."""
    chain = []
    for coef, intercept in layers:
        layer = dense(coef, intercept, cells, min_rows)
        if layer is None:
            return None
        chain.append(layer)
    native = _active
    assert native is not None
    call, layers_t, h, o = native.dense_forward, tuple(chain), LINKS[hidden], LINKS[output]

    def forward(X: Any, pair: bool = False) -> np.ndarray | None:
        result: np.ndarray | None = call(layers_t, X, h, o, pair)
        return result

    return forward
