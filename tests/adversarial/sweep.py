"""Sweep every parameter of every exactness case to hostile values: a manual audit, not a test.

    .venv/bin/python -m tests.adversarial.sweep                  # every kind, ~10 minutes
    .venv/bin/python -m tests.adversarial.sweep --kinds int --limit-gib 3

For each case of the exactness matrix (tests/cases), the fitted estimator is compiled once; then
each parameter of its manifest (arrays and metadata aside) is set, one at a time, to values of
its kind: integers to 2**31 - 1, 2**27, 2**24, 2**40, -1, 0, 3; floats to +-1e308, 0.0, -0.0,
5e-324, 1.5; strings to "", "x", "none", "float32", "l2"; booleans flipped; lists emptied,
cut to their first item, extended by their last, or given 0, 1e308 or "x". Each mutant is
loaded and every method the model has is called on the case's held-out rows, under an
address-space limit (``--limit-gib``): anything but a ModelshelfError (a MemoryError, a numpy
ValueError, a KeyError) is printed once per place it was raised, with the case, the parameter
and the value. tests/adversarial/test_widths.py keeps a test for each finding.
"""

from __future__ import annotations

import argparse
import collections
import copy
import resource
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "score_samples",
    "transform",
)
KINDS = ("int", "float", "str", "bool", "list")
CONTAINERS = ("steps", "parts", "estimators")  # lists of components: emptied elsewhere


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    for kind, typ in (("int", int), ("float", float), ("str", str), ("list", list)):
        if isinstance(value, typ):
            return kind
    return None


def _values(value: Any) -> list[Any]:
    kind = _kind(value)
    if kind == "int":
        return [2**31 - 1, 2**27, 2**24, 2**40, -1, 0, 3]
    if kind == "float":
        return [1e308, -1e308, 0.0, -0.0, 5e-324, 1.5]
    if kind == "str":
        return ["", "x", "none", "float32", "l2"]
    if kind == "bool":
        return [not value]
    if kind == "list":
        return [[], [0], [1e308], ["x"], value[:1], value + value[-1:] if value else []]
    return []


def _params(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every value in the manifest's model, arrays excepted."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "arrays":
                yield from _params(value, (*path, key))
    elif isinstance(node, list):
        if path and path[-1] not in CONTAINERS:
            yield path
        for i, value in enumerate(node):
            yield from _params(value, (*path, i))
    elif _kind(node) is not None:
        yield path


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS), help="of: " + ", ".join(KINDS))
    parser.add_argument("--limit-gib", type=int, default=6, help="address-space limit")
    args = parser.parse_args()
    kinds = set(args.kinds.split(","))
    limit = args.limit_gib << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    import modelshelf
    from modelshelf.errors import ModelshelfError
    from modelshelf.image import Image
    from tests.adversarial import _raw
    from tests.cases import CASES

    warnings.simplefilter("ignore")
    found: collections.Counter[tuple[str, str, int]] = collections.Counter()
    for case in CASES:
        try:
            est, X = case.fit()
            image = Image.open(modelshelf.compile(est))
        except Exception:  # a case this machine cannot fit is not the point
            continue
        arrays = list(image.arrays.items())
        rows = X[:20]
        for path in _params(image.manifest["model"], ("model",)):
            current = _at(image.manifest, path)
            if _kind(current) not in kinds:
                continue
            for value in _values(current):
                manifest = copy.deepcopy(image.manifest)
                _at(manifest, path[:-1])[path[-1]] = value
                try:
                    model = modelshelf.load(_raw.assemble(arrays, manifest))
                    for method in METHODS:
                        if hasattr(model, method):
                            getattr(model, method)(rows)
                except ModelshelfError:
                    pass
                except Exception as exc:  # what the sweep is looking for
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    where = (type(exc).__name__, frame.filename.rsplit("/", 1)[-1], frame.lineno)
                    if not found[where]:
                        print(
                            f"{where[0]} at {where[1]}:{where[2]}: {case.id} {path} = "
                            f"{value!r:.40}: {str(exc)[:160]}",
                            flush=True,
                        )
                    found[where] += 1
    print(f"done: {sum(found.values())} failures at {len(found)} places")


if __name__ == "__main__":
    main()
