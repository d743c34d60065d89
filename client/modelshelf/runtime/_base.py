"""Executors and the registry that builds them from an image's manifest.

A manifest's ``model`` is a tree of component specs::

    {"kind": "<registered kind>", "arrays": {"<role>": "<array name>"}, "params": {...}}

An executor class registers its kind and builds itself from a ``Spec`` in O(number of arrays):
it keeps the image's read-only views and never copies or reshapes model bytes at load.
Executors receive inputs already validated by ``modelshelf.runtime.check_input``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn, TypeVar

import numpy as np

from ..errors import ManifestError

METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "score_samples",
)

_MISSING: Any = object()


class Executor(ABC):
    """Base of every runtime component. Subclasses implement the methods they support."""

    kind: ClassVar[str] = ""
    #: methods this executor supports; subclasses may narrow it per instance.
    methods: frozenset[str] = frozenset()
    #: True if NaN may reach this component's input (imputers, scalers, trees with missing support).
    allow_nan: bool = False
    #: validates its input cast to float32, as scikit-learn's trees do: a finite value float32
    #: rounds to infinity is refused there (set from the spec's ``float32_range``). Only the
    #: trees themselves: inside a composite they check what reaches them (trees_forest.py)
    float32_range: bool = False
    #: why scikit-learn answers a scipy.sparse batch otherwise than the dense array it stands
    #: for (the model then refuses sparse input: it answers the dense one only); None: alike
    sparse_differs: str | None = None
    #: float32 input: scikit-learn computes it in float32 in this part, or in one inside it,
    #: and this runtime does not: which part and why (the model refuses float32 input; set by
    #: ``build`` from the spec's ``fitted_float32``, or by the class)
    float32_differs: str | None = None
    #: this composite widens float32 for each part that does not keep it (pipelines, column
    #: transformers), as scikit-learn's numpy promotion does, instead of handing X on as it is
    routes_float32: bool = False
    #: validates as scikit-learn's linear models and MLPs do (numbers kept as they are) with
    #: float32 weights: bool, 8- and 16-bit integers and float16 are float32 by numpy's
    #: promotion there, and the model reads them so
    narrows_small: bool = False
    #: which inputs reach this model's product ``X @ coef`` in their own dtype, for numpy's
    #: matmul to cast, which it does into a C-ordered copy (that layout's sums: a 1-D coef's
    #: gemv sums a Fortran-ordered X otherwise): "numeric", any that is not native float64
    #: (linear models validate X as "numeric"); "float32" (GLMs keep float32, convert the
    #: rest, keeping its layout); "" none. The door converts those in C order (``cast_order``)
    product_casts: str = ""
    #: a numpy array (or list) of another dtype than native float32 or float64 is cast to
    #: float32 before it is read, as LightGBM does (from the spec's ``numpy_float32``); a
    #: DataFrame is read as float64, as there
    numpy_float32: bool = False
    #: a column transformer's parts that compute float32 (name, input columns): a DataFrame
    #: mixing float32 columns with others is float32 for a part of only float32 columns there
    float32_parts: tuple[tuple[str, np.ndarray], ...] = ()
    #: whether float32 input is computed with, not only handed on (``computes_float32``);
    #: None: as ``keeps_float32`` says
    float32_arithmetic: bool | None = None
    #: input columns a column transformer passes through as they are: scikit-learn refuses a
    #: DataFrame's nullable column there that holds pd.NA (its numpy output would hold pd.NA)
    na_refused: tuple[int, ...] | None = None
    #: a part inside was fitted on float32 and computes float32 input as scikit-learn does
    #: (``keeps_float32`` from its weights): float32 input must reach it as float32
    float32_fitted: bool = False
    #: class labels for classifiers, None otherwise
    #: (a list of arrays for multi-output classifiers, as scikit-learn has it).
    classes_: np.ndarray | list[np.ndarray] | None = None

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Spec) -> Executor:
        """Build the executor over the image's views; O(number of arrays)."""

    def supports(self, method: str) -> bool:
        return method in self.methods


_METHOD_SETS: dict[frozenset[str], frozenset[str]] = {}


def method_set(names: object) -> frozenset[str]:
    """One shared frozenset per distinct set of method names: a process holding thousands of
    models keeps a handful of these, not one per executor."""
    key = frozenset(names)  # type: ignore[call-overload]
    return _METHOD_SETS.setdefault(key, key)


E = TypeVar("E", bound=type[Executor])
_REGISTRY: dict[str, type[Executor]] = {}


def register(cls: E) -> E:
    """Class decorator: make ``cls`` buildable from specs whose kind is ``cls.kind``."""
    if not cls.kind or cls.kind in _REGISTRY:
        raise RuntimeError(f"executor kind {cls.kind!r} is empty or registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)


def computes_float32(executor: Executor) -> bool:
    """Whether ``executor`` answers float32 input otherwise than the same values in float64:
    it keeps float32 and computes with it (``float32_arithmetic``, by default whether it keeps
    float32; False for those that only hand columns on, such as a feature selection)."""
    value = getattr(executor, "float32_arithmetic", None)
    if value is None:
        return bool(getattr(executor, "keeps_float32", False))
    return bool(value)


def build(raw: Any, arrays: Mapping[str, np.ndarray], path: str = "model") -> Executor:
    """Build the executor tree described by ``raw`` over ``arrays``."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a component object, found {type(raw).__name__}")
    kind = raw.get("kind")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ManifestError(
            f"{path}: unknown model kind {kind!r}; this modelshelf knows "
            f"{', '.join(registered_kinds())} (a newer modelshelf may know more)"
        )
    spec = Spec(raw, arrays, path)
    executor = cls.from_spec(spec)
    parts = spec.built
    differs = next((c.float32_differs for c in parts if c.float32_differs is not None), None)
    if spec.param("fitted_float32", bool, False):
        differs = f"{path} ({kind}) was fitted on float32 data"
    elif differs is None and not executor.routes_float32:
        # scikit-learn's meta-estimators hand X on as it is: a part that computes float32 in
        # float32 would get it there, and gets it widened here (this one does not keep it)
        kept = next((c for c in parts if computes_float32(c)), None)
        if kept is not None and not getattr(executor, "keeps_float32", False):
            differs = f"{path} ({kind}) hands it to a {kept.kind} that keeps float32"
    if differs is not None:
        executor.float32_differs = differs
    if any(c.float32_fitted for c in parts):
        executor.float32_fitted = True
    if spec.param("float32_range", bool, False):
        executor.float32_range = True
    if spec.param("numpy_float32", bool, False):
        executor.numpy_float32 = True
    return executor


T = TypeVar("T")


#: the largest width or count a manifest may give (``Spec.count``): column indices are int32
MAX_COUNT = (1 << 31) - 1
MAX_LABEL_WIDTH = 1 << 12  # characters of a string label dtype (``<U21``: 21)


class Spec:
    """Typed, bounds-checked access to one component spec; every fault is a ManifestError."""

    __slots__ = ("_arrays", "_params", "_refs", "arrays", "built", "path", "raw")

    def __init__(self, raw: dict[str, Any], arrays: Mapping[str, np.ndarray], path: str) -> None:
        self.raw = raw
        self.arrays = arrays
        self.path = path
        refs = raw.get("arrays", {})
        params = raw.get("params", {})
        if not isinstance(refs, dict) or not isinstance(params, dict):
            raise ManifestError(f"{path}: 'arrays' and 'params' must be JSON objects")
        self._refs = refs
        self._params = params
        self.built: list[Executor] = []  # the children built through child() and children()

    def array(
        self,
        role: str,
        *,
        ndim: int | tuple[int, ...] | None = None,
        kind: str = "f",
        optional: bool = False,
    ) -> Any:
        """The array playing ``role``; ``kind`` is the allowed numpy dtype kinds ('f', 'iu'...)."""
        name = self._refs.get(role)
        transposed = name is None and f"{role}.T" in self._refs
        if transposed:  # stored as the row-major transpose of a column-major array
            name = self._refs[f"{role}.T"]
        if name is None:
            if optional:
                return None
            raise ManifestError(f"{self.path}: missing array {role!r}")
        arr = self.arrays.get(name) if isinstance(name, str) else None
        if arr is None:
            raise ManifestError(f"{self.path}: array {role!r} names {name!r}, which is not stored")
        if transposed:
            if arr.ndim != 2:
                raise ManifestError(f"{self.path}: array {role}.T must be 2-D, the transpose")
            arr = arr.T
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if allowed is not None and arr.ndim not in allowed:
            raise ManifestError(
                f"{self.path}: array {role!r} has {arr.ndim} dimensions, expected {allowed}"
            )
        if arr.dtype.kind not in kind:
            raise ManifestError(
                f"{self.path}: array {role!r} has dtype {arr.dtype}, expected kind {kind!r}"
            )
        return arr

    def param(self, key: str, typ: type[T] | tuple[type, ...], default: Any = _MISSING) -> Any:
        if key not in self._params:
            if default is _MISSING:
                raise ManifestError(f"{self.path}: missing parameter {key!r}")
            return default
        value = self._params[key]
        # bool is an int in Python; never accept it where a number is expected, or vice versa.
        types = typ if isinstance(typ, tuple) else (typ,)
        if isinstance(value, bool) and bool not in types:
            ok = False
        elif value is None:
            ok = type(None) in types
        else:
            ok = isinstance(value, types)
        if not ok:
            raise ManifestError(
                f"{self.path}: parameter {key!r} is {value!r}, expected {_names(types)}"
            )
        return value

    def count(self, key: str, least: int = 0, most: int = MAX_COUNT) -> int:
        """An integer parameter that sizes or counts something (a width, a number of
        features), bounded before anything is allocated from it."""
        value: int = self.param(key, int)
        if not least <= value <= most:
            self.fail(f"parameter {key!r} must be in {least}..{most}, found {value}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.param(key, str, default)
        if value not in options:
            raise ManifestError(
                f"{self.path}: parameter {key!r} is {value!r}, not one of {options}"
            )
        return value

    def child(self, key: str) -> Executor:
        built = build(self.param(key, dict), self.arrays, f"{self.path}.{key}")
        self.built.append(built)
        return built

    def children(self, key: str) -> list[Executor]:
        items = self.param(key, list)
        path = f"{self.path}.{key}"
        built = [build(item, self.arrays, f"{path}[{i}]") for i, item in enumerate(items)]
        self.built.extend(built)
        return built

    def labels(self, key: str = "classes") -> np.ndarray:
        """Class labels: a stored numeric array, or a JSON list of strings."""
        if key in self._refs:
            return self.array(key, ndim=1, kind="biuf")
        value = self.param(key, dict)
        strings = value.get("strings")
        dtype = value.get("dtype")
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise ManifestError(f"{self.path}: labels {key!r} must list strings")
        if dtype == "object":
            out = np.empty(len(strings), dtype=object)
            out[:] = strings
            return out
        if dtype != "str":
            raise ManifestError(f"{self.path}: labels {key!r} dtype {dtype!r} is not str/object")
        width = value.get("width")
        if width is None:  # images before format 1.2's width: as wide as the longest
            return np.array(strings, dtype=str)
        longest = max(map(len, strings), default=0)
        if (
            not isinstance(width, int)
            or isinstance(width, bool)
            or not max(longest, 1) <= width <= MAX_LABEL_WIDTH
        ):
            raise ManifestError(
                f"{self.path}: labels {key!r} width must be an integer from the longest label "
                f"({longest}) to {MAX_LABEL_WIDTH}, found {width!r}"
            )
        return np.array(strings, dtype=f"<U{width}")

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)

    def fail(self, message: str) -> NoReturn:
        """Raise the ManifestError for this component. Hot ``from_spec`` code writes
        ``if not ok: spec.fail(f"...")`` so that the message is only formatted on failure."""
        raise ManifestError(f"{self.path}: {message}")


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)
