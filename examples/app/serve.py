"""The example application: an HTTP prediction service that maps its models from the node's
shelf. It needs numpy and modelshelf only (no scikit-learn): the models are images, published
by ``publish.py``, handed out by the node's ``modelshelfd`` and mapped read-only here.

    POST /predict   header ``X-Model: ns/name[@version]``, body ``{"instances": [[...], ...]}``
                    -> ``{"model", "predictions", "probabilities" (classifiers only)}``
    GET  /healthz   -> 200 ``{"ok": true}`` (this process; the daemon has its own /healthz)

The model is named by a header, not the path, so that a load balancer in front of several nodes
can hash on it and send each model's traffic to the nodes that hold it hot (docs/scaling.md).

One ``modelshelf.Client`` serves every request thread (it is thread-safe). A model once mapped
is answered from the process's cache without a round trip while its version has not changed,
and keeps working while the daemon restarts. The cache is bounded (``MODELSHELF_MAX_HELD_BYTES``
and ``MODELSHELF_MAX_HELD_MODELS``, else what the daemon advises): a process serving thousands
of models keeps the ones it uses most, and the others' leases end with their mappings.

    python serve.py --port 8000        # the daemon's socket: $MODELSHELF_SOCKET or the default
    curl -s localhost:8000/predict -H 'X-Model: demo/iris' -d '{"instances": [[5.1,3.5,1.4,0.2]]}'
"""

from __future__ import annotations

import argparse
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

import modelshelf

log = logging.getLogger("example-app")

MAX_BODY = 8 << 20  # a request body beyond this is refused, not read

# the most specific class first: AccessDenied is also an OSError, InputError a ValueError
_STATUS: tuple[tuple[type[Exception], HTTPStatus], ...] = (
    (modelshelf.ModelNotFound, HTTPStatus.NOT_FOUND),
    (modelshelf.AccessDenied, HTTPStatus.FORBIDDEN),
    (modelshelf.InvalidModelName, HTTPStatus.BAD_REQUEST),
    (modelshelf.InputError, HTTPStatus.BAD_REQUEST),
    (modelshelf.DaemonUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
    (modelshelf.StoreError, HTTPStatus.SERVICE_UNAVAILABLE),
    (modelshelf.ShelfError, HTTPStatus.SERVICE_UNAVAILABLE),
)


class BadRequest(ValueError):
    """The request is not a JSON body with a non-empty "instances" list, or lacks X-Model."""


def predict(client: modelshelf.Client, ref: str, body: bytes) -> dict[str, Any]:
    """Answer one prediction request (separate from HTTP so that it reads on its own)."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadRequest('expected a JSON object {"instances": [[...], ...]}')
    model = client.model(ref)
    X = instances  # the model validates it: shape, type and feature count (InputError)
    reply: dict[str, Any] = {"model": ref, "predictions": np.asarray(model.predict(X)).tolist()}
    if hasattr(model, "predict_proba"):
        reply["classes"] = np.asarray(model.classes_).tolist()
        reply["probabilities"] = np.asarray(model.predict_proba(X)).tolist()
    return reply


class Handler(BaseHTTPRequestHandler):
    server_version = "modelshelf-example/1"
    client: modelshelf.Client  # set on the class by main()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(HTTPStatus.OK, {"ok": True})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            return
        ref = self.headers.get("X-Model", "")
        length = int(self.headers.get("Content-Length") or 0)
        if not ref:
            self._send(HTTPStatus.BAD_REQUEST, {"error": "name the model in X-Model: ns/name"})
            return
        if not 0 < length <= MAX_BODY:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"body of 1..{MAX_BODY} bytes expected"})
            return
        try:
            reply = predict(self.client, ref, self.rfile.read(length))
        except BadRequest as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception as exc:
            status = next((s for kind, s in _STATUS if isinstance(exc, kind)), None)
            if status is None:
                log.exception("predicting with %s failed", ref)
                status = HTTPStatus.INTERNAL_SERVER_ERROR
            self._send(status, {"error": f"{type(exc).__name__}: {exc}"})
        else:
            self._send(HTTPStatus.OK, reply)

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--socket", help="the daemon's client socket (default: $MODELSHELF_SOCKET)")
    args = parser.parse_args(argv)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    Handler.client = modelshelf.Client(args.socket)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    log.info("serving on %s:%d, shelf socket %s", args.host, args.port, Handler.client.socket_path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        Handler.client.close()


if __name__ == "__main__":
    main()
