"""The converter registry and the context converters write arrays and specs through."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import UnsupportedModelError
from ..image import ImageBuilder
from ..image._manifest import source_date_epoch
from ..runtime._base import MAX_LABEL_WIDTH
from ..runtime.text_lookup import build_vocabulary

Converter = Callable[[Any, "Context", str], dict[str, Any]]
_CONVERTERS: dict[type, Converter] = {}


def converter(*classes: type) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of exactly these estimator classes (not subclasses:
    a subclass may override predict, and an image must never predict differently)."""

    def decorate(fn: Converter) -> Converter:
        for cls in classes:
            _CONVERTERS[cls] = fn
        return fn

    return decorate


def supported_estimators() -> list[str]:
    """The public estimator classes ``compile`` accepts, as ``package.Class``."""
    return sorted(
        f"{c.__module__.split('.')[0]}.{c.__name__}"
        for c in _CONVERTERS
        if not c.__name__.startswith("_")  # helpers a meta-estimator fits inside itself
    )


def unsupported(est: Any, what: str, fix: str = "") -> UnsupportedModelError:
    """The error for an option of a supported estimator that images cannot represent:
    ``what`` names the option as the user wrote it, ``fix`` the way out."""
    way_out = f"; {fix}" if fix else ""
    return UnsupportedModelError(f"{type(est).__name__}: {what} cannot be compiled{way_out}")


def _unknown_class(est: Any) -> UnsupportedModelError:
    """The error for a class without a converter: what it is, and what to compile instead."""
    name = f"{type(est).__module__.split('.')[0]}.{type(est).__qualname__}"
    if hasattr(est, "param_grid") or hasattr(est, "param_distributions"):
        # A search object (GridSearchCV...): the model it found is what predicts.
        if hasattr(est, "best_estimator_"):
            fix = "compile the model it found: modelshelf.compile(search.best_estimator_)"
        else:
            fix = "fit it (with refit=True), then compile search.best_estimator_"
        return UnsupportedModelError(f"{name} is a search, not a model; {fix}")
    return UnsupportedModelError(
        f"modelshelf cannot compile {name}: no converter for this class (subclasses of "
        "supported classes included); modelshelf.convert.supported_estimators() lists them"
    )


class Context:
    """Collects the arrays of one image while converters walk an estimator tree.

    Converters of models that keep facts about their input outside scikit-learn's attributes
    (native boosters' feature names, the training categories of pandas category columns) record
    them with ``describe_input``; ``compile`` writes them into the manifest's ``input``.
    Encoders fitted on strings set ``takes_strings``: the input is then tabular (format 1.1).
    """

    def __init__(self) -> None:
        self.builder = ImageBuilder()
        self.feature_names: list[str] | None = None
        self.categories: list[dict[str, Any]] = []
        self.takes_strings = False

    def convert(self, est: Any, path: str = "model") -> dict[str, Any]:
        fn = _CONVERTERS.get(type(est))
        if fn is None:
            raise _unknown_class(est)
        _check_fitted(est)
        fitted32 = _float32_attribute(est)
        name = type(est).__name__
        if fitted32 is not None and name in FLOAT32_REFUSED:
            raise unsupported(
                est,
                f"a model fitted on float32 data ({fitted32} is float32)",
                "refit it on float64 data (X.astype(np.float64)): scikit-learn then computes "
                "it in float64, as modelshelf does; fitted on float32 it computes in float32 "
                "even for float64 input",
            )
        spec = fn(est, self, path)
        if fitted32 is not None and name not in FLOAT32_EXACT:
            # float64 input is answered as scikit-learn does; float32 input is refused
            spec.setdefault("params", {})["fitted_float32"] = True
        return spec

    def spec(
        self,
        kind: str,
        path: str,
        *,
        arrays: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        labels: Any = None,
    ) -> dict[str, Any]:
        """Build a component spec, storing ``arrays`` (None values skipped) under ``path``."""
        refs = {}
        for role, value in (arrays or {}).items():
            if value is None:
                continue
            if _column_major(value):
                # kept in the estimator's own memory order: numpy chooses its BLAS route (and
                # so the order of the additions, the last bits) by the operands' layout, and
                # scikit-learn >= 1.9 keeps LogisticRegression's coef_ column-major. Stored as
                # its row-major transpose under the role "<role>.T", read back as a view: a
                # reader that does not know the suffix misses the role and refuses the image,
                # never reads the transpose as the array
                role, value = f"{role}{TRANSPOSED}", value.T
            refs[role] = self.builder.add(f"{path}/{role}", value)
        out_params = dict(params or {})
        if labels is not None:
            encoded = encode_labels(np.asarray(labels))
            if isinstance(encoded, np.ndarray):
                refs["classes"] = self.builder.add(f"{path}/classes", encoded)
            else:
                out_params["classes"] = encoded
        spec: dict[str, Any] = {"kind": kind}
        if refs:
            spec["arrays"] = refs
        if out_params:
            spec["params"] = out_params
        return spec

    def describe_input(
        self,
        est: Any,
        path: str,
        *,
        feature_names: list[str] | None = None,
        categories: Sequence[Category] = (),
    ) -> None:
        """Record the feature names and category tables of the model at ``path``.

        Only the root model sees the image's input as the caller gives it: a model inside a
        pipeline or a meta-estimator sees what the steps before it made of it, so its
        categories could not be applied, and it is refused rather than left to read values
        as codes.
        """
        if path != "model":
            if categories:
                raise UnsupportedModelError(
                    f"{type(est).__name__} at {path} was fitted on pandas category columns, "
                    "which only a model compiled on its own reads as its library does: compile "
                    "the model itself, or encode the categories in a step before it"
                )
            return
        self.feature_names = feature_names
        self.categories = [self._category(c) for c in sorted(categories, key=lambda c: c.column)]

    def _category(self, category: Category) -> dict[str, Any]:
        base = f"input/categories/{category.column}"
        entry: dict[str, Any] = {
            "column": category.column,
            "table": category.table,
            "unknown": category.unknown,
        }
        arrays: Mapping[str, np.ndarray]
        if category.table == "numbers":
            values = np.asarray(category.values, dtype=np.float64)
            order = np.argsort(values, kind="stable")
            arrays = {"values": values[order], "codes": order.astype(np.int32)}
        elif category.table == "strings":
            arrays = build_vocabulary({v: code for code, v in enumerate(category.values)})
        else:
            return entry
        entry["arrays"] = {
            role: self.builder.add(f"{base}/{role}", a) for role, a in arrays.items()
        }
        return entry


@dataclass(frozen=True)
class Category:
    """One categorical feature: its column, its training categories in code order (numbers or
    strings; none for ``codes``) and what an unseen category is: ``missing`` or an ``error``.
    ``category(...)`` builds it, checking the categories."""

    column: int
    table: str
    values: tuple[Any, ...]
    unknown: str


def category(est: Any, column: int, name: str, values: Any, unknown: str) -> Category:
    """The ``Category`` of feature ``column`` (``name`` in messages) from its training
    categories in code order (``values``), or a ``codes`` one if ``values`` is None; refuses
    categories a table cannot hold exactly."""
    if values is None:
        return Category(column, "codes", (), unknown)
    items = list(values)
    where = f"{type(est).__name__}: categorical feature {name!r} has"
    if all(isinstance(v, str) for v in items):
        table = "strings"
    elif all(isinstance(v, bool | int | float | np.number) for v in items):
        table = "numbers"
        numbers = np.asarray(items, dtype=np.float64)
        if not np.isfinite(numbers).all() or any(
            isinstance(v, int | np.integer) and float(v) != v for v in items
        ):
            raise UnsupportedModelError(
                f"{where} categories that are not exact doubles ({items[:8]}); "
                "use categories of at most 2**53 in magnitude, or strings"
            )
        items = numbers.tolist()
    else:
        kinds = sorted({type(v).__name__ for v in items})
        raise UnsupportedModelError(
            f"{where} categories of types {kinds}; they must be all numbers or all strings: "
            "convert the column's categories to one type before fitting"
        )
    if len(set(items)) != len(items):
        raise UnsupportedModelError(f"{where} categories that repeat ({items[:8]})")
    return Category(column, table, tuple(items), unknown)


def encode_labels(classes: np.ndarray) -> np.ndarray | dict[str, Any]:
    """Numeric labels as an array; string labels as a JSON list (keeping str vs object, and
    the width of a numpy string dtype: predictions come in the estimator's own ``<U21``)."""
    if classes.dtype.kind in "biuf":
        return classes
    if classes.dtype.kind == "U":
        width = classes.dtype.itemsize // 4
        encoded: dict[str, Any] = {"dtype": "str", "strings": [str(c) for c in classes]}
        return encoded if width > MAX_LABEL_WIDTH else {**encoded, "width": width}
    if classes.dtype.kind == "O":
        values = list(classes)
        if all(isinstance(v, str) for v in values):
            return {"dtype": "object", "strings": values}
        try:
            numeric = np.asarray(values)
        except (TypeError, ValueError):
            numeric = None
        if numeric is not None and numeric.dtype.kind in "biuf":
            return numeric
    raise UnsupportedModelError(
        f"class labels of dtype {classes.dtype} must be all numbers or all strings"
    )


#: estimators that compute float32 input as scikit-learn does when fitted on float32 (checked
#: by fitting the exactness matrix on float32: tests/unit/runtime/test_float32.py). Any other
#: estimator with a float32 array among its attributes is marked ``fitted_float32``: the model
#: answers float64 input and refuses float32 input.
FLOAT32_EXACT = frozenset(
    {
        # linear models and MLPs keep float32 weights and compute float32 input in float32
        *[
            "ARDRegression",
            "BayesianRidge",
            "ElasticNet",
            "ElasticNetCV",
            "HuberRegressor",
            "Lars",
            "LarsCV",
            "Lasso",
            "LassoCV",
            "LassoLars",
            "LassoLarsCV",
            "LassoLarsIC",
            "LinearRegression",
            "LinearSVC",
            "LinearSVR",
            "LogisticRegression",
            "LogisticRegressionCV",
            "MultiTaskElasticNet",
            "MultiTaskElasticNetCV",
            "MultiTaskLasso",
            "MultiTaskLassoCV",
            "OrthogonalMatchingPursuit",
            "OrthogonalMatchingPursuitCV",
            "PassiveAggressiveClassifier",
            "PassiveAggressiveRegressor",
            "Perceptron",
            "Ridge",
            "RidgeCV",
            "RidgeClassifier",
            "RidgeClassifierCV",
            "SGDClassifier",
            "SGDRegressor",
            "TheilSenRegressor",
            "MLPClassifier",
            "MLPRegressor",
        ],
        # transformers whose float32 arithmetic follows scikit-learn's (issue 10, point 2)
        *[
            "IsotonicRegression",
            "OrdinalEncoder",
            "OneHotEncoder",
            "RobustScaler",
            "StandardScaler",
            "MinMaxScaler",
            "MaxAbsScaler",
            "SimpleImputer",
            "TfidfTransformer",
            "TfidfVectorizer",
        ],
    }
)
#: fitted on float32, these compute in float32 even for float64 input: refused at compile
FLOAT32_REFUSED = frozenset(
    {"BayesianGaussianMixture", "GaussianMixture", "GaussianNB", "MiniBatchNMF", "PowerTransformer"}
)


def _float32_attribute(est: Any) -> str | None:
    """The name of a float32 array among ``est``'s own attributes (numpy or scipy.sparse, or
    in a list of them, as an MLP's ``coefs_``), or None: the mark of a model fitted on float32
    data."""
    for key, value in vars(est).items():
        items = value if isinstance(value, list | tuple) else (value,)
        if any(_is_float32_array(v) for v in items):
            return key
    return None


def _is_float32_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype == np.float32
    # a scipy.sparse matrix (a random projection's components_), without importing scipy
    dtype = getattr(value, "dtype", None) if hasattr(value, "tocsr") else None
    return isinstance(dtype, np.dtype) and dtype == np.float32


def _check_fitted(est: Any) -> None:
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(est, BaseEstimator):
        return
    try:
        check_is_fitted(est)
    except NotFittedError as exc:
        raise UnsupportedModelError(
            f"{type(est).__name__} is not fitted; call fit() before compile()"
        ) from exc


TRANSPOSED = ".T"  # the suffix of a role stored as the transpose of its array (runtime/_base)


def _column_major(value: Any) -> bool:
    """A 2-D array laid out column by column (and not also row by row: one row or column)."""
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.flags.f_contiguous
        and not value.flags.c_contiguous
    )


def _created() -> _dt.datetime:
    """Now, or ``$SOURCE_DATE_EPOCH`` (the reproducible-builds convention) if set: the same
    model compiled twice is then the same image, byte for byte (``modelshelf publish`` of a
    pickle or .safetensors file sets it to the file's modification time)."""
    return source_date_epoch() or _dt.datetime.now(_dt.UTC)


def build_metadata(est: Any, metadata: Mapping[str, Any] | None, framework: str) -> dict[str, Any]:
    extra = dict(metadata or {})
    name = extra.pop("name", type(est).__name__)
    for key, value in [("name", name), *extra.items()]:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata keys and values must be strings: {key!r}: {value!r}")
    framework_version = ""
    module = type(est).__module__.split(".")[0]
    with contextlib.suppress(ImportError, AttributeError):
        framework_version = str(__import__(module).__version__)
    return {
        "name": name,
        "framework": framework,
        "framework_version": framework_version,
        "estimator": f"{type(est).__module__}.{type(est).__qualname__}",
        "created": _created().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "modelshelf_version": __version__,
        "extra": extra,
    }
