"""``AdminConnection``: a synchronous connection to the node daemon's admin socket.

Used by the ``modelshelf`` command, the benchmarks and any operator tool: ``request`` sends one
message (docs/protocol.md, "Admin socket") and returns the reply, or raises the error class of
the reply's code (``modelshelf.errors.for_code``).
"""

from __future__ import annotations

import socket
from typing import Any

from . import paths as _paths
from . import wire as _wire
from ._version import __version__
from .errors import DaemonUnavailable, ShelfError, for_code

__all__ = ["AdminConnection"]


class AdminConnection:
    """A synchronous connection to the daemon's admin socket."""

    def __init__(self, path: str | None = None, timeout: float = 120.0) -> None:
        self.path = path or _paths.default_admin_socket()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
            hello = {"op": "hello", "protocol": _wire.PROTOCOL_VERSION}
            self.request({**hello, "client": f"modelshelf-cli/{__version__}"})
        except ShelfError:  # the daemon answered (AccessDenied is also an OSError)
            self.sock.close()
            raise
        except (OSError, EOFError) as exc:
            self.sock.close()
            raise DaemonUnavailable(
                f"no modelshelf daemon answers on the admin socket {self.path} ({exc}); is "
                "modelshelfd running? set MODELSHELF_ADMIN_SOCKET or --admin-socket"
            ) from exc

    def request(self, message: dict[str, Any], fds: tuple[int, ...] = ()) -> dict[str, Any]:
        _wire.send(self.sock, message, fds)
        reply, got = _wire.recv(self.sock)
        _wire.close_fds(got)
        if reply.get("ok") is not True:
            code = str(reply.get("error"))
            raise for_code(code)(f"{reply.get('message')} [{code}]")
        return reply

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AdminConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
