"""``AdminConnection``: a synchronous connection to the node daemon's admin socket.

Used by the ``modelshelf`` command, the benchmarks and any operator tool: ``request`` sends one
message (docs/protocol.md, "Admin socket") and returns the reply, or raises the error class of
the reply's code (``modelshelf.errors.for_code``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

from . import paths as _paths
from . import trust as _trust
from . import wire as _wire
from ._version import __version__
from .errors import AccessDenied, DaemonUnavailable, ShelfError, for_code

__all__ = ["AdminConnection"]


ENVIRONMENT = ("MODELSHELF_ADMIN_TIMEOUT",)  # the CLI's own; MODELSHELF_ADMIN_SOCKET is a setting
HELLO_TIMEOUT = 10.0  # seconds for the daemon to answer a connection's hello
DEFAULT_TIMEOUT = 120.0  # seconds for a request (a publish reads the whole file meanwhile)


class AdminConnection:
    """A synchronous connection to the daemon's admin socket. ``daemon_uid``: the uid the
    daemon must run as, checked before anything is sent, as ``Client`` does
    (``modelshelf.trust``; default ``$MODELSHELF_DAEMON_UID``)."""

    def __init__(
        self,
        path: str | None = None,
        timeout: float | None = None,
        *,
        daemon_uid: int | None = None,
    ) -> None:
        self.path = path or _paths.default_admin_socket()
        if daemon_uid is None:
            daemon_uid = _trust.daemon_uid_from_env()
        if timeout is None:
            timeout = _wire.seconds_from_env("MODELSHELF_ADMIN_TIMEOUT", DEFAULT_TIMEOUT)
        # a daemon that is up answers its hello at once: one that accepts and says nothing is
        # stuck, and is said so within HELLO_TIMEOUT, not the requests' own (long) timeout
        try:
            self.sock = _wire.connect(self.path, min(timeout, HELLO_TIMEOUT))
        except OSError as exc:
            raise self._unavailable(exc) from exc
        try:
            _trust.check_daemon(self.sock, self.path, daemon_uid)
            hello = {"op": "hello", "protocol": _wire.PROTOCOL_VERSION}
            # refused (busy): the daemon said why before closing, read below
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _wire.send(self.sock, {**hello, "client": f"modelshelf-cli/{__version__}"})
            self._reply()
            self.sock.settimeout(timeout)
        except ShelfError:  # the daemon answered, or is not trusted (both are also OSErrors)
            self.sock.close()
            raise
        except TimeoutError as exc:
            self.sock.close()
            raise DaemonUnavailable(
                f"the daemon on the admin socket {self.path} accepted the connection but did "
                f"not answer within {min(timeout, HELLO_TIMEOUT):g} s: it may be stuck or "
                "overloaded (its log, and 'systemctl status modelshelfd', say more)"
            ) from exc
        except (OSError, EOFError) as exc:
            self.sock.close()
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> ShelfError:
        if isinstance(exc, PermissionError):  # the socket is there, for the daemon's admins
            return AccessDenied(
                f"the admin socket {self.path} refuses this user (uid {os.getuid()}): it is "
                "for the daemon's own uid and admin_uids; run as one of them (sudo), or ask "
                "an administrator to add this uid to admin_uids"
            )
        return DaemonUnavailable(
            f"no modelshelf daemon answers on the admin socket {self.path} ({exc}); is "
            "modelshelfd running? set MODELSHELF_ADMIN_SOCKET or --admin-socket"
        )

    def request(
        self,
        message: dict[str, Any],
        fds: tuple[int, ...] = (),
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` and return its reply; progress frames that come before the reply
        (``{"progress": done, "total": size}``, a publish asked ``"progress": true``) go to
        ``progress(done, total)``."""
        try:
            _wire.send(self.sock, message, fds)
            return self._reply(progress)
        except (EOFError, ConnectionError) as exc:  # stopped or killed meanwhile: one line
            raise DaemonUnavailable(
                f"the daemon on the admin socket {self.path} closed the connection before it "
                f"answered {message.get('op')!r} (it stopped or was killed meanwhile): check "
                "whether it took effect (modelshelf status, models) before you retry"
            ) from exc

    def _reply(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        while True:
            reply, got = _wire.recv(self.sock)
            _wire.close_fds(got)
            if "progress" not in reply or "ok" in reply:
                break
            if progress is not None:
                progress(int(reply["progress"]), int(reply.get("total", 0)))
        if reply.get("ok") is not True:
            code = str(reply.get("error"))
            raise for_code(code)(f"{reply.get('message')} [{code}]")
        return reply

    def close(self) -> None:
        """Close the connection; a request another thread waits on returns at once (EOF)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> AdminConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
