"""Text-classifier benchmark: modelshelf against scikit-learn, in the same run.

    .venv/bin/python -m bench.text             # writes bench/out/text.md and PNG plots

Three pipelines, fitted on a synthetic corpus (generated words, four topics, Zipf-distributed;
no downloads):

- ``tfidf-word-300k``: ``TfidfVectorizer(ngram_range=(1, 2), max_features=300_000)`` +
  ``LogisticRegression``: a 300k-term vocabulary of word unigrams and bigrams;
- ``hashing-sgd``: ``HashingVectorizer(ngram_range=(1, 2))`` (2**20 columns) +
  ``SGDClassifier`` (hinge loss: ``predict``);
- ``tfidf-char_wb``: ``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))`` +
  ``LogisticRegression``.

Measured in one worker process that has imported scikit-learn, joblib and modelshelf:
(a) load + first prediction of one document, ``joblib.load`` against ``modelshelf.load``;
(b) single-document latency and 1000-document throughput of ``predict_proba`` (``predict``
    where the pipeline has no probabilities), against the pipeline's own method.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._util import (
    OUT,
    bar_plot,
    fmt_bytes,
    fmt_time,
    machine_summary,
    markdown_table,
    suite_main,
)

MODELS_DIR = OUT / "models_text"
N_TOPICS = 4


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct pronounceable pseudo-words of 2 to 5 syllables."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["qu", "th", "sh"]
    words: set[str] = set()
    while len(words) < n:
        k = rng.integers(2, 6, size=n)
        picks = rng.integers(0, len(syllables), size=(n, 5))
        words.update(
            "".join(syllables[j] for j in row[:m]) for row, m in zip(picks, k, strict=True)
        )
    return sorted(words)[:n]


def corpus(n_docs: int, *, seed: int = 0, words: int = 60_000) -> tuple[list[str], np.ndarray]:
    """``n_docs`` documents of 60 to 140 words, each from one of four topics: a topic draws
    half its words from its own Zipf-ranked list, half from a shared one."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_words(np.random.default_rng(12345), words), dtype=object)
    cdf = np.cumsum(1.0 / np.arange(1, words + 1) ** 1.05)
    cdf /= cdf[-1]
    topic_order = [np.random.default_rng(100 + t).permutation(words) for t in range(N_TOPICS)]
    labels = rng.integers(0, N_TOPICS, size=n_docs)
    lengths = rng.integers(60, 141, size=n_docs)
    docs = []
    for label, length in zip(labels.tolist(), lengths.tolist(), strict=True):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(length)), words - 1)
        own = rng.random(length) < 0.5
        ids = np.where(own, topic_order[label][ranks], ranks)
        docs.append(" ".join(vocab[ids]))
    return docs, labels


def _models() -> list[tuple[str, Callable[[], Any], int]]:
    """(id, make, number of training documents)."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.pipeline import make_pipeline

    return [
        (
            "tfidf-word-300k",
            lambda: make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), max_features=300_000),
                LogisticRegression(max_iter=100),
            ),
            20_000,
        ),
        (
            "hashing-sgd",
            lambda: make_pipeline(
                HashingVectorizer(ngram_range=(1, 2)), SGDClassifier(random_state=0)
            ),
            20_000,
        ),
        (
            "tfidf-char_wb",
            lambda: make_pipeline(
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)),
                LogisticRegression(max_iter=100),
            ),
            4_000,
        ),
    ]


def _vocabulary_size(est: Any) -> str:
    first = est.steps[0][1]
    vocabulary = getattr(first, "vocabulary_", None)
    return (
        f"{len(vocabulary):,} terms" if vocabulary is not None else f"{first.n_features:,} hashed"
    )


def build(only: str | None) -> list[dict[str, Any]]:
    import joblib

    import modelshelf

    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    docs, labels = corpus(20_000)
    test_path = MODELS_DIR / "test_docs.json"
    test_path.write_text(json.dumps(corpus(1000, seed=1)[0]))
    built = []
    for model_id, make, n_docs in _models():
        if only and only not in model_id:
            continue
        est = make()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(docs[:n_docs], labels[:n_docs])
        fit_time = time.perf_counter() - t0
        image = modelshelf.compile(est)
        joblib_path = MODELS_DIR / f"{model_id}.joblib"
        image_path = MODELS_DIR / f"{model_id}.msi"
        joblib.dump(est, joblib_path)
        image_path.write_bytes(image)
        built.append(
            {
                "id": model_id,
                "joblib": str(joblib_path),
                "image": str(image_path),
                "docs": str(test_path),
                "fit": fit_time,
                "features": _vocabulary_size(est),
                "image_bytes": len(image),
                "joblib_bytes": joblib_path.stat().st_size,
            }
        )
        print(f"built {model_id}: {built[-1]['features']}, fit {fit_time:.1f} s")
    return built


# The warm worker: libraries imported once, then every model loaded as if for the first time.
WORKER = """
import itertools, json, os, shutil, statistics, time, warnings
import numpy as np, joblib, sklearn, modelshelf
import sklearn.pipeline, sklearn.feature_extraction.text, sklearn.linear_model
warnings.simplefilter("ignore")
models = json.loads(%(models)r)
REPEAT, LOAD_REPEAT = %(repeat)d, %(load_repeat)d

from bench._util import budget_time

def timed(fn, repeat=REPEAT, budget=0.05):
    return budget_time(fn, repeat=repeat, budget=budget)

def method(m):
    return "predict_proba" if hasattr(m, "predict_proba") else "predict"

results = []
for spec in models:
    docs = json.load(open(spec["docs"]))
    one = docs[:1]
    out = {"id": spec["id"]}
    # Fresh copies so that no in-process cache helps anyone; the page cache is warm.
    copies = {k: [spec[k] + f".copy{i}" for i in range(LOAD_REPEAT + 1)]
              for k in ("joblib", "image")}
    for k, paths in copies.items():
        for c in paths:
            shutil.copyfile(spec[k], c)
    keep = []
    def first(kind, load):
        paths = iter(copies[kind])
        def fn():
            m = load(next(paths)); getattr(m, method(m))(one); keep.append(m)
        return fn
    for kind, load in (("joblib", joblib.load), ("image", modelshelf.load)):
        out["load_" + kind] = timed(first(kind, load), repeat=LOAD_REPEAT, budget=0)
        keep.clear()
    for paths in copies.values():
        for c in paths:
            os.remove(c)
    est = joblib.load(spec["joblib"])
    mod = modelshelf.load(spec["image"])
    out["method"] = name = method(est)
    sk, sh = getattr(est, name), getattr(mod, name)
    a, b = np.asarray(sk(docs)), np.asarray(sh(docs))
    out["agree"] = bool(np.array_equal(a, b) if name == "predict"
                        else np.allclose(a, b, rtol=1e-6, atol=1e-9))
    # One document per call, cycling through the first 50 (a service answers varied requests).
    cycle = itertools.cycle(docs[:50])
    out["sk1"] = timed(lambda: sk([next(cycle)]))
    out["sh1"] = timed(lambda: sh([next(cycle)]))
    out["sk1000"] = timed(lambda: sk(docs))
    out["sh1000"] = timed(lambda: sh(docs))
    del est, mod, sk, sh
    results.append(out)
    print(spec["id"], flush=True)
print(json.dumps(results))
"""


def report(built: list[dict[str, Any]]) -> str:
    loads, latency = [], []
    for s in built:
        speedup = s["load_joblib"] / s["load_image"]
        loads.append(
            [
                s["id"],
                s["features"],
                fmt_bytes(s["joblib_bytes"]),
                fmt_bytes(s["image_bytes"]),
                fmt_time(s["load_joblib"]),
                fmt_time(s["load_image"]),
                f"{speedup:.0f}x" + (" (goal 100x)" if s["id"] == "tfidf-word-300k" else ""),
            ]
        )
        latency.append(
            [
                s["id"],
                s["method"],
                fmt_time(s["sk1"]),
                fmt_time(s["sh1"]),
                f"{s['sk1'] / s['sh1']:.2f}x",
                "met" if s["sh1"] <= s["sk1"] else "missed",
                fmt_time(s["sk1000"]),
                fmt_time(s["sh1000"]),
                f"{s['sh1000'] / s['sk1000']:.2f}x",
                "met" if s["sh1000"] <= 2 * s["sk1000"] else "missed",
                "yes" if s["agree"] else "NO",
            ]
        )
    return "\n\n".join(
        [
            f"Machine: {machine_summary()}",
            "(a) Load + first prediction (one document), in a process that has imported "
            "scikit-learn and modelshelf:",
            markdown_table(
                [
                    "pipeline",
                    "features",
                    "joblib file",
                    "image",
                    "joblib.load",
                    "modelshelf.load",
                    "speed-up",
                ],
                loads,
            ),
            "(b) Steady latency: one document per call (goal: no slower than scikit-learn) and "
            "1000 documents per call (goal: within 2x). `agree`: same labels, probabilities "
            "within rtol 1e-6.",
            markdown_table(
                [
                    "pipeline",
                    "method",
                    "sklearn 1 doc",
                    "modelshelf 1 doc",
                    "speed-up",
                    "goal",
                    "sklearn 1000 docs",
                    "modelshelf 1000 docs",
                    "modelshelf / sklearn",
                    "goal",
                    "agree",
                ],
                latency,
            ),
        ]
    )


def plots(built: list[dict[str, Any]]) -> None:
    labels = [s["id"] for s in built]
    bar_plot(
        OUT / "text_load.png",
        "Text pipelines: load + first prediction, warm process",
        labels,
        {
            "joblib.load": [s["load_joblib"] * 1e3 for s in built],
            "modelshelf.load": [s["load_image"] * 1e3 for s in built],
        },
        "milliseconds (log)",
    )
    bar_plot(
        OUT / "text_latency.png",
        "Text pipelines: 1 document and 1000 documents per call",
        labels,
        {
            "sklearn 1 doc": [s["sk1"] * 1e6 for s in built],
            "modelshelf 1 doc": [s["sh1"] * 1e6 for s in built],
            "sklearn 1000 docs": [s["sk1000"] * 1e6 for s in built],
            "modelshelf 1000 docs": [s["sh1000"] * 1e6 for s in built],
        },
        "microseconds (log)",
    )


def main() -> None:
    suite_main("text", __doc__, build, WORKER, report, plots, MODELS_DIR)


if __name__ == "__main__":
    main()
