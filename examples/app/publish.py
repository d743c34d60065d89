"""The example's publisher: a one-shot job that fits two small models, compiles each into an
image and publishes it straight to the object store, as the next version of ``demo/iris`` (a
classifier: scaler + logistic regression) and ``demo/diabetes`` (a random-forest regressor).

Every daemon polling that store sees the new versions within ``ref_poll_seconds``; none of them
needs to be told. Needs scikit-learn (the "convert" side) and obstore (the store client, in the
"daemon" extra); the data sets ship with scikit-learn.

    MODELSHELF_STORE=s3://modelshelf/demo AWS_ENDPOINT_URL=http://minio:9000 ... python publish.py
    python publish.py --store file:///tmp/store
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf.store import Store


def models() -> dict[str, Any]:
    """The fitted estimators to publish, by ``ns/name``."""
    iris = load_iris()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(iris.data, iris.target_names[iris.target])  # string labels come back as strings
    diabetes = load_diabetes()
    reg = RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0)
    reg.fit(diabetes.data, diabetes.target)
    return {"demo/iris": clf, "demo/diabetes": reg}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        default=os.environ.get("MODELSHELF_STORE"),
        help="object store URL (default: $MODELSHELF_STORE); S3 settings from the AWS_* variables",
    )
    parser.add_argument(
        "--store-options",
        default=os.environ.get("MODELSHELF_STORE_OPTIONS") or "{}",
        help="obstore options as JSON (default: $MODELSHELF_STORE_OPTIONS)",
    )
    args = parser.parse_args(argv)
    if not args.store:
        parser.error("give --store URL or set MODELSHELF_STORE")
    store = Store(args.store, json.loads(args.store_options))
    for key, estimator in models().items():
        image = modelshelf.compile(estimator, metadata={"name": key})
        namespace, name = key.split("/")
        info = store.publish(namespace, name, image)
        where = f"{info.digest[:12]}, {info.size} bytes"
        print(f"published {key}@{info.version} ({where}) to {store.url}", flush=True)


if __name__ == "__main__":
    main()
