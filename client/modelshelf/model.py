"""``Model``: a loaded image with scikit-learn's prediction surface, and ``load``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _kernels
from .errors import InputTypeError, ManifestError, UnsupportedModelError
from .image import Image
from .image._reader import Source
from .runtime import Executor, as_float_matrix, build
from .runtime._categories import CategoryTables, is_category
from .runtime._input import as_table, is_frame, is_scipy_sparse, ready_float64
from .runtime._sparse import publish
from .runtime.text import as_documents

# "numeric": a 2-D array of numbers; "tabular" (format 1.1): numbers too, and a DataFrame's
# category columns recoded through input.categories, or strings for the model's encoders;
# "text": a sequence of documents (str or bytes); "none": a tensor bundle, which predicts
# nothing.
_INPUT_TYPES = ("numeric", "tabular", "text", "none")


class _Method:
    """A model method that exists only where the compiled estimator had it (like sklearn's
    ``available_if``): ``hasattr(model, "predict_proba")`` is False for a regressor.

    The first access builds the method and stores it on the model, where later lookups find it
    before this descriptor (which defines no ``__set__``): a call then costs no lookup."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, model: Model | None, owner: type | None = None) -> Any:
        if model is None:
            return self
        executor = model._executor
        if executor is None or not executor.supports(self.name):
            raise AttributeError(f"this {model.kind!r} model has no {self.name}()")
        method = _bind(model, executor, self.name)
        method.__doc__ = self.__doc__
        model.__dict__[self.name] = method
        return method


def _bind(model: Model, executor: Executor, name: str) -> Callable[[Any], Any]:
    """``model.<name>``: the input checked (an already valid float64 array in one call, anything
    else by ``_preparer``'s checks, which alone word refusals), the kernel, the output published.
    Nothing here refers to the model: the method is stored on it (see ``_preparer``)."""
    kernel: Callable[[Any], Any] = getattr(executor, name)
    prepare = model._prepare
    ready, width, allow_nan = model._ready, model._width, model._allow_nan
    frame = model._pandas_columns if name == "transform" else None

    # scikit-learn's keywords, named (a **kwargs dict would cost every call): any other is
    # Python's TypeError, naming Model.<method>
    def method(X: Any, *, return_std: Any = None, return_cov: Any = None) -> Any:
        if return_std is not None or return_cov is not None:
            asked = "return_std" if return_std is not None else "return_cov"
            raise UnsupportedModelError(
                f"{name}() of a compiled model takes X only, got {asked}: the image holds "
                f"what {name}(X) computes, nothing else; ask the original estimator for the rest"
            )
        arr = None if ready is None else ready(X, width, allow_nan)
        # Sparse results (text vectorizers) reach the caller as SciPy CSR when installed.
        out = publish(kernel(prepare(X) if arr is None else arr))
        return out if frame is None else _as_frame(out, frame, X)

    method.__name__ = name
    method.__qualname__ = f"Model.{name}"
    return method


class Model:
    """A compiled model, predicting straight from its image's memory.

    Methods mirror the scikit-learn estimator the image was compiled from; a method the
    estimator lacks is absent here too. Arrays are read-only views over the image: nothing is
    copied at load, and loading costs O(number of arrays).
    """

    predict = _Method("Predict labels (classifiers) or values (regressors) for X.")
    predict_proba = _Method("Class probabilities for X, columns ordered as classes_.")
    predict_log_proba = _Method("Logarithm of predict_proba(X).")
    decision_function = _Method("Confidence scores (signed distances, raw margins) for X.")
    transform = _Method("Transform X as the compiled transformer or pipeline does.")
    score_samples = _Method("Per-sample scores, as the compiled estimator defines them.")

    def __init__(self, image: Image) -> None:
        self.image = image
        manifest = image.manifest
        spec = manifest["model"]
        self.kind: str = str(spec.get("kind"))
        schema = manifest.get("input") or {}
        if not isinstance(schema, dict):
            raise ManifestError("manifest field 'input' must be a JSON object")
        self._input_type = schema.get("type", "numeric")
        if self._input_type not in _INPUT_TYPES:
            raise ManifestError(
                f"input type {self._input_type!r} is unknown; this modelshelf knows "
                f"{', '.join(_INPUT_TYPES)} (a newer modelshelf may know more)"
            )
        n_features = schema.get("n_features")
        names = schema.get("feature_names")
        if n_features is not None and (
            isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 0
        ):
            raise ManifestError(f"input n_features must be a non-negative integer: {n_features!r}")
        if names is not None and (
            not isinstance(names, list)
            or not all(isinstance(n, str) for n in names)
            or (n_features is not None and len(names) != n_features)
        ):
            raise ManifestError("input feature_names must list one string per feature")
        self._n_features: int | None = n_features
        self._feature_names: list[str] | None = names
        self._categories: CategoryTables | None = None
        if self._input_type == "tabular" and "categories" in schema:
            self._categories = CategoryTables.from_manifest(
                schema.get("categories"), image.arrays, n_features
            )
        elif "categories" in schema:
            raise ManifestError(
                f"input categories need input type 'tabular', not {self._input_type!r}"
            )
        self._executor: Executor | None = (
            None if self.kind == "tensors" else build(spec, image.arrays)
        )
        self._allow_nan = bool(self._executor is not None and self._executor.allow_nan)
        # A root that takes strings (encoders, a column transformer) gets mixed columns as is.
        self._objects = self._categories is None and getattr(
            self._executor, "accepts_objects", False
        )
        name_columns = getattr(self._executor, "name_columns", None)
        if self._objects and names is not None and name_columns is not None:
            name_columns(names)  # errors name the columns as the caller's DataFrame does
        self._keep_float32 = bool(getattr(self._executor, "keeps_float32", False))
        self._pandas_columns = _pandas_output(manifest.get("output"))
        if self._input_type == "tabular" and self._categories is None and not self._objects:
            raise ManifestError(
                "tabular input needs category tables (input.categories) or a model whose "
                "first step takes strings (an encoder or a column transformer)"
            )
        self._codes_only = self._input_type == "numeric" and _splits_on_codes(spec)
        # The common input, a float64 array valid as it is, checked in one call (compiled with
        # the kernels chosen at load); None for text, whose documents _preparer reads.
        self._ready: Callable[[Any, int, bool], np.ndarray | None] | None = None
        # a root that validates X cast to float32 (scikit-learn's trees): no value beyond its range
        self._within_float32 = bool(self._executor is not None and self._executor.float32_range)
        forest = getattr(self._executor, "forest", None)
        if self._within_float32 and forest is not None and hasattr(forest, "check_range"):
            forest.check_range = False  # the door's scan checks the trees' input, once
        if self._executor is not None and self._input_type != "text":
            ready = _kernels.float_input() or ready_float64
            if self._within_float32:
                self._ready = lambda X, width, allow_nan: ready(X, width, allow_nan, True)
            else:
                self._ready = ready
        self._width = -1 if n_features is None else n_features
        self._prepare = _preparer(self)
        image.compact()  # everything needed is built: keep the bytes, not their parse

    @functools.cached_property
    def metadata(self) -> Mapping[str, Any]:
        """The image's metadata (name, framework, creation time, free-form pairs), read-only."""
        return _frozen(self.image.manifest["metadata"])

    @property
    def tensors(self) -> Mapping[str, np.ndarray]:
        """Every array of the image by name: read-only numpy views, never copies."""
        return self.image.arrays

    @property
    def classes_(self) -> np.ndarray | list[np.ndarray]:
        classes = None if self._executor is None else self._executor.classes_
        if classes is None:
            raise AttributeError(f"this {self.kind!r} model is not a classifier: no classes_")
        return classes

    @property
    def n_features_in_(self) -> int:
        if self._n_features is None:
            raise AttributeError(f"this {self.kind!r} model has no fixed feature count")
        return self._n_features

    @property
    def feature_names_in_(self) -> np.ndarray:
        if self._feature_names is None:
            raise AttributeError("the model was not fitted with feature names")
        out = np.empty(len(self._feature_names), dtype=object)
        out[:] = self._feature_names
        return out

    def __reduce__(self) -> Any:
        raise TypeError(
            "a modelshelf Model is a view of its image's memory: it cannot be pickled or "
            "copied; send its reference ('ns/name@version') to the worker and acquire it "
            "there with modelshelf.Client().model(ref) (or load its file with modelshelf.load)"
        )

    def __repr__(self) -> str:
        name = self.metadata.get("name", "")
        return f"<modelshelf.Model {self.kind} {name!r} {self.image.size} bytes>"


def _preparer(model: Model) -> Callable[[Any], Any]:
    """``model``'s input checks and conversions (``X`` as its executor takes it), over values
    read from the model once: the methods stored on the model hold this function, and a
    reference back to the model would make a cycle that keeps its image mapped (and leased
    from the daemon) until the garbage collector runs, not until the last reference goes."""
    input_type, n_features, names = model._input_type, model._n_features, model._feature_names
    categories, allow_nan, keep_float32 = model._categories, model._allow_nan, model._keep_float32
    within_float32 = model._within_float32
    objects, codes_only = model._objects, model._codes_only
    widen_float16 = bool(getattr(model._executor, "widens_float16", False))
    takes_vectors = bool(getattr(model._executor, "takes_vectors", False))
    used = getattr(model._executor, "used_columns", None)
    sparse_differs = None if model._executor is None else model._executor.sparse_differs
    executor = model._executor
    float32_differs = _float32_differs(executor, keep_float32)
    float32_fitted = executor is not None and executor.float32_fitted
    # a root that computes float32 input in float32 as numpy promotes it (a linear model or
    # MLP fitted on float32): bool, small integers and float16 become float32 first
    narrows = bool(getattr(executor, "narrows_small", False))
    watch_dtype = float32_differs is not None or float32_fitted or narrows or keep_float32
    float32_parts = () if executor is None else executor.float32_parts
    product_casts = "" if executor is None else executor.product_casts
    numpy_float32 = executor is not None and executor.numpy_float32
    widen_float16 = widen_float16 or narrows  # then made float32, below
    na_refused = None if executor is None else executor.na_refused
    if model._pandas_columns is not None:
        na_refused = None  # set_output(transform="pandas"): the column stays in a DataFrame

    def prepare(X: Any) -> Any:
        if input_type == "text":
            return as_documents(X)
        if takes_vectors and np.ndim(X) == 1:
            X = np.asarray(X).reshape(-1, 1)  # IsotonicRegression: a vector is one feature
        if codes_only and type(X) is not np.ndarray:
            _refuse_category_columns(X)
        if sparse_differs is not None and type(X) is not np.ndarray and is_scipy_sparse(X):
            raise InputTypeError(
                f"this model answers a scipy.sparse matrix as the dense array it stands for, "
                f"and scikit-learn answers it otherwise here ({sparse_differs}): pass "
                "X.toarray() for the dense answer, or predict with scikit-learn"
            )
        if na_refused is not None and is_frame(X):
            _refuse_na_passed_through(X, na_refused, names)
        seen = _seen_dtype(X) if watch_dtype else None
        if float32_differs is not None and _narrow(seen):
            refit = ", or refit the model on float64 data" if "fitted" in float32_differs else ""
            raise InputTypeError(
                f"{seen} input: {float32_differs}, and scikit-learn keeps {seen} there and "
                "computes with it, which modelshelf does not: pass X.astype(np.float64) "
                f"(answered as scikit-learn answers float64 input){refit}"
            )
        if float32_parts and not _narrow(seen) and is_frame(X):
            _refuse_narrow_parts(X, float32_parts, names)
        if float32_fitted and seen == np.float32 and is_scipy_sparse(X):
            raise InputTypeError(
                "float32 sparse input: scikit-learn multiplies it as a sparse float32 matrix "
                "(its own order of sums), and modelshelf as the dense array it stands for: "
                "pass X.toarray() (answered as scikit-learn answers it)"
            )
        if narrows and _small(seen) and seen != np.float32 and type(X) is np.ndarray:
            # bool, small integers and float16 times float32 weights are float32 in numpy
            X = X.astype(np.float32)
        if objects:
            return as_table(
                X,
                n_features,
                feature_names=names,
                allow_nan=allow_nan,
                used=used,
                keep_float32=keep_float32,
                widen_float16=widen_float16,
                within_float32=within_float32,
            )
        matrix = as_float_matrix(
            X,
            n_features,
            feature_names=names,
            categories=categories,
            allow_nan=allow_nan,
            keep_float32=keep_float32,
            widen_float16=widen_float16,
            within_float32=within_float32,
            product_casts=product_casts,
            numpy_float32=numpy_float32,
        )
        if (
            matrix.dtype != np.float32
            and ((keep_float32 and seen == np.float32) or (narrows and _small(seen)))
            and not is_scipy_sparse(X)
        ):
            # a DataFrame mixing float32 with narrower columns, a list of float32 rows, a
            # big-endian float32 array: float32 in scikit-learn (every value is exact in it)
            matrix = matrix.astype(np.float32)
            matrix.flags.writeable = False
        return matrix

    return prepare


def _refuse_na_passed_through(X: Any, columns: tuple[int, ...], names: list[str] | None) -> None:
    """scikit-learn's ColumnTransformer refuses a nullable column (Int64, Float64, boolean...)
    that holds pd.NA where a part passes it through to its numpy output: so does this."""
    import pandas as pd  # X is a DataFrame: pandas is imported already

    for j in columns:
        if names is not None:
            if j >= len(names) or names[j] not in X.columns:
                continue  # the names are checked, and reported, when X is read
            column = X[names[j]]
        elif j < X.shape[1]:
            column = X.iloc[:, j]
        else:
            continue
        if not isinstance(column, pd.Series):  # a name twice: read and reported later
            continue
        if getattr(column.dtype, "na_value", None) is pd.NA and pd.NA in column.values:
            raise InputTypeError(
                f"column {column.name!r} has dtype {column.dtype} and holds pd.NA, and the "
                "column transformer passes it through to a numpy array: scikit-learn refuses "
                "this (ValueError); pass the column as float64 with NaN for missing "
                f"(X.astype({{{column.name!r}: 'float64'}})), as scikit-learn asks"
            )


def _refuse_narrow_parts(
    X: Any, parts: tuple[tuple[str, np.ndarray], ...], names: list[str] | None
) -> None:
    """A DataFrame of mixed dtypes is read as float64; scikit-learn's column transformer gives
    each part its own columns, float32 (or float16) when all of them are: refused there."""
    dtypes = list(X.dtypes)
    positions = {str(c): i for i, c in enumerate(X.columns)}
    for name, indices in parts:
        try:
            taken = [
                dtypes[positions[names[int(j)]] if names is not None else int(j)] for j in indices
            ]
            narrow = np.result_type(*[np.dtype(d) for d in taken]) if taken else None
        except (KeyError, IndexError, TypeError):  # names and widths are reported later
            continue
        if _narrow(narrow):
            raise InputTypeError(
                f"a DataFrame of mixed dtypes: the column transformer's part {name!r} takes "
                f"only {narrow} columns, and scikit-learn computes it in {narrow} there, while "
                "modelshelf reads the frame as float64: pass X.astype(np.float64) (answered as "
                "scikit-learn answers it)"
            )


def _seen_dtype(X: Any) -> np.dtype | None:
    """The dtype scikit-learn's validation would give ``X``: an array's (scipy.sparse too),
    numpy's promotion of a DataFrame's column dtypes, a list's as numpy reads it; None where it
    cannot tell (a pandas extension dtype, objects)."""
    dtype = getattr(X, "dtype", None)
    if dtype is not None:
        return dtype if isinstance(dtype, np.dtype) else None
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None:
        if isinstance(X, list | tuple):
            try:
                return np.asarray(X).dtype
            except (ValueError, TypeError):  # ragged: read and reported later
                return None
        return None
    try:
        found = [np.dtype(d) for d in dtypes]
    except TypeError:  # a pandas extension dtype: not a numpy number
        return None
    if not found or any(d.kind not in "biuf" for d in found):
        return None
    return np.result_type(*found)


def _narrow(dtype: np.dtype | None) -> bool:
    """float32 or float16: floats that scikit-learn may compute with as they are."""
    return dtype is not None and dtype.kind == "f" and dtype.itemsize < 8


def _small(dtype: np.dtype | None) -> bool:
    """A dtype numpy promotes to float32 against float32 weights (bool, 8- and 16-bit
    integers, float16, float32)."""
    return dtype is not None and (
        (dtype.kind in "biu" and dtype.itemsize <= 2) or (dtype.kind == "f" and dtype.itemsize <= 4)
    )


def _float32_differs(executor: Any, keep_float32: bool) -> str | None:
    """Why float32 input would be answered otherwise than scikit-learn answers it, or None:
    a part fitted on float32 that computes in float64 (``float32_differs``), or parts that
    compute float32 as scikit-learn does behind one that widens it first."""
    if executor is None:
        return None
    if executor.float32_differs is not None:
        return executor.float32_differs
    if executor.float32_fitted and not keep_float32:
        return f"parts fitted on float32 data are inside a {executor.kind}, which widens it"
    return None


_MAX_OUTPUT_COLUMNS = 1 << 24  # names in output.columns; a wide one-hot output has thousands


def _pandas_output(output: Any) -> list[str] | None:
    """The column names of a transform configured with ``set_output(transform="pandas")``
    (manifest ``output``), or None for arrays."""
    if output is None:
        return None
    if not isinstance(output, dict) or output.get("transform") != "pandas":
        raise ManifestError("output must be {'transform': 'pandas', 'columns': [...]}")
    columns = output.get("columns")
    if (
        not isinstance(columns, list)
        or len(columns) > _MAX_OUTPUT_COLUMNS
        or not all(isinstance(c, str) for c in columns)
    ):
        raise ManifestError(f"output columns must list at most {_MAX_OUTPUT_COLUMNS} strings")
    return columns


def _as_frame(out: Any, columns: list[str], X: Any) -> Any:
    """``out`` as scikit-learn's pandas output: a DataFrame with the fitted output names and the
    input DataFrame's index. Without pandas, the array (docs/format.md says so)."""
    try:
        import pandas as pd
    except ImportError:
        return out
    if getattr(out, "ndim", 0) != 2 or out.shape[1] != len(columns):
        raise ManifestError(
            f"output names {len(columns)} columns, the transform made {getattr(out, 'shape', '?')}"
        )
    index = X.index if is_frame(X) and len(getattr(X, "index", ())) == len(out) else None
    frame = pd.DataFrame(out, columns=columns, index=index)
    if getattr(getattr(out, "dtype", None), "kind", "") == "O":
        # strings beside numbers: scikit-learn stacks each part's frame, its numeric columns
        # float64; one object array made every column object
        frame = frame.infer_objects()
    return frame


def _splits_on_codes(spec: Any) -> bool:
    """Whether the root model is an XGBoost or LightGBM forest with categorical splits (which
    read codes; scikit-learn's encode values first) compiled without category tables: before
    format 1.1, or fitted on columns of codes."""
    arrays = spec.get("arrays")
    return (
        spec.get("kind") in ("boosted_classifier", "boosted_regressor")
        and isinstance(arrays, dict)
        and "cat_column" in arrays
        and "encode_column" not in arrays
    )


def _refuse_category_columns(X: Any) -> None:
    """A DataFrame's category columns hold values whose codes such an image cannot know."""
    columns, dtypes = getattr(X, "columns", None), getattr(X, "dtypes", None)
    if columns is None or dtypes is None or isinstance(dtypes, np.dtype):
        return
    names = [str(n) for n, d in zip(columns, dtypes, strict=False) if is_category(d)]
    if names:
        raise InputTypeError(
            f"columns {names[:8]} are pandas 'category' columns, but this image stores no "
            "training categories to recode them with (it was compiled before modelshelf "
            "recorded them, or the model was fitted on columns of codes): pass the codes as "
            "numbers (X[name].cat.codes), or compile the model again with this modelshelf"
        )


def _frozen(value: Any) -> Any:
    """A read-only copy of JSON metadata: a Model's metadata must not drift from its image."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def load(source: Source | Image, *, verify: bool = False) -> Model:
    """Load a model from an image: bytes, bytearray, memoryview, mmap, or a file path.

    The image's structure is always validated; ``verify=True`` also checks its CRC-32, which
    reads every byte. An immutable source (bytes, a read-only memoryview or mmap) is not
    copied: the model's arrays are views over it. A writable one (bytearray, a writable
    memoryview or mmap) is copied once: the compiled kernels check an image's indices once and
    trust them after, so its bytes must not change under them. A path is mapped read-only, not
    copied: while the model is in use, do not truncate the file (the process would die of
    SIGBUS at its next read) or rewrite it in place (the model would change under it); to
    replace it, write a new file and rename it over the old one (the daemon's images are
    sealed and never change).
    """
    image = source if isinstance(source, Image) else Image.open(source)
    if verify:
        image.verify()
    return Model(image)
