"""Compiled text kernels against the numpy runtime, on the same images (issue 13, point 2).

    .venv/bin/python -m bench.kernels_text       # prints a table, writes bench/out/kernels_text.md

bench/text.py's pipelines, fitted on 8000 documents of its synthetic corpus:
``TfidfVectorizer(ngram_range=(1, 2), max_features=300_000)`` + ``LogisticRegression`` (a
300k-term vocabulary of word unigrams and bigrams) and ``HashingVectorizer(ngram_range=(1, 2))``
(2**20 columns) + ``SGDClassifier``. Each is loaded twice from one image, once per kernel
(``modelshelf._kernels.use``), and timed on 1 and 100 documents of 60 to 140 words: the whole
pipeline (``predict_proba``, or ``predict``) and its vectorizer alone (``transform``). The two
kernels alternate within every repetition (their order flips each time); medians over
repetitions of wall and process CPU time per call, and the 25th-75th percentile of the ratios.
Both kernels' outputs are checked equal to the bit first.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench._util import OUT, markdown_table
from bench.kernels import _cells, _per_call
from bench.text import corpus


def _bits(out: Any) -> list[bytes]:
    """An output's bytes: a CSR's parts, or an array's."""
    parts = [out.data, out.indices, out.indptr] if hasattr(out, "indptr") else [out]
    return [str(p.dtype).encode() + np.ascontiguousarray(p).tobytes() for p in parts]


def _pipelines() -> dict[str, Any]:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.pipeline import make_pipeline

    docs, labels = corpus(8000)
    return {
        "tfidf-word-300k": make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), max_features=300_000),
            LogisticRegression(max_iter=100),
        ).fit(docs, labels),
        "hashing-sgd": make_pipeline(
            HashingVectorizer(ngram_range=(1, 2)), SGDClassifier(random_state=0)
        ).fit(docs, labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21, help="interleaved repetitions")
    args = parser.parse_args()

    import modelshelf
    from modelshelf import _kernels

    if _kernels.BUILT is None:
        raise SystemExit("the compiled kernels are not built (pip install -e .)")
    test_docs, _ = corpus(100, seed=7)
    batches = {"1 doc": (test_docs[:1], 200), "100 docs": (test_docs, 5)}
    table = []
    for name, pipe in _pipelines().items():
        method = "predict_proba" if hasattr(pipe, "predict_proba") else "predict"
        stages = {"pipeline": modelshelf.compile(pipe), "vectorizer": modelshelf.compile(pipe[0])}
        for stage, image in stages.items():
            call = method if stage == "pipeline" else "transform"
            loaded = {}
            for kernel in ("numpy", "compiled"):
                _kernels.use(kernel)
                loaded[kernel] = getattr(modelshelf.load(image), call)
            _kernels.use("compiled")
            for label, (docs, calls) in batches.items():
                assert _bits(loaded["compiled"](docs)) == _bits(loaded["numpy"](docs)), "disagree"
                times: dict[str, list[tuple[float, float]]] = {"numpy": [], "compiled": []}
                for rep in range(args.reps):
                    order = ("numpy", "compiled") if rep % 2 else ("compiled", "numpy")
                    for kernel in order:
                        fn = loaded[kernel]
                        times[kernel].append(_per_call(lambda f=fn, d=docs: f(d), calls))
                t_np, t_c = np.array(times["numpy"]), np.array(times["compiled"])
                row = [name, f"{stage} ({call})", label]
                table.append([*row, *_cells(t_np[:, 0], t_c[:, 0]), *_cells(t_np[:, 1], t_c[:, 1])])
                print(" | ".join(table[-1]), flush=True)
    header = ["model", "stage", "batch", "numpy", "compiled", "numpy / compiled (IQR)"]
    header += ["numpy CPU", "compiled CPU", "CPU ratio (IQR)"]
    text = markdown_table(header, table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kernels_text.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
