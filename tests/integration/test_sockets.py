"""The sockets under abuse (issue 9, points 4 to 7): a flood of connections does not stall the
others; a peer cannot pin descriptors, hold every slot or sit on a half-sent message; and a
client never talks to a socket another user planted."""

from __future__ import annotations

import array
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshelf import wire as _wire
from modelshelf.admin import AdminConnection
from modelshelf.client import Client
from modelshelf.errors import UntrustedDaemon
from modelshelf.store import Store

from ._users import User, shared_dir, user
from .conftest import Images, Shelf, raw_connect, wait_for
from .test_hardening import _daemon_fds, _hello

_FLOOD = """\
import socket, sys, threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
count = 0
print("FLOODING", flush=True)
while not stop.is_set():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect({path!r})
        count += 1
    except OSError:
        pass
    s.close()
print(count, flush=True)
"""

_LEGIT = """\
import sys
from modelshelf.client import Client
for _ in range(5):
    with Client({path!r}, timeout=20) as client:
        assert client.model("ns/lr").predict({rows!r}).shape == (2,)
print("OK", flush=True)
"""


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory for a socket other users connect to."""
    path = shared_dir("msf-sockets-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _closed(sock: socket.socket, timeout: float = 20.0) -> bool:
    """Whether the daemon closes ``sock`` within ``timeout`` (with or without a last word)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def _python(script: str, **stdin: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_connect_close_flood_does_not_stall_the_others(shelf: Shelf, images: Images) -> None:
    """Peers that connect and close as fast as they can, while legitimate clients connect,
    acquire and predict: every legitimate one is served (issue 9, point 7)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    daemon.admin("prefetch", model="ns/lr")
    floods = [_python(_FLOOD.format(path=daemon.socket), stdin=True) for _ in range(2)]
    try:
        for flood in floods:
            assert flood.stdout is not None and flood.stdout.readline().strip() == "FLOODING"
        rows = [[5.0, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 2.0]]
        legit = [_python(_LEGIT.format(path=daemon.socket, rows=rows)) for _ in range(8)]
        results = [proc.communicate(timeout=120) for proc in legit]
        failed = [err for proc, (_, err) in zip(legit, results, strict=True) if proc.returncode]
        assert failed == [], failed[0] if failed else ""
    finally:
        flooded = [int(flood.communicate(input="", timeout=30)[0].split()[-1]) for flood in floods]
    assert min(flooded) > 100, flooded  # the flood really ran
    assert daemon.client().model("ns/lr") is not None


def test_descriptors_sent_to_the_client_socket_are_closed_on_arrival(
    shelf: Shelf, images: Images
) -> None:
    """A peer past its hello starts a message it never finishes and attaches descriptors to
    byte after byte: the first ones are closed on arrival and the connection with them, the
    daemon's descriptor count is back where it was, and others are served (issue 9, point 5)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    assert daemon.proc is not None
    fd_dir = Path(f"/proc/{daemon.proc.pid}/fd")
    good = daemon.client()
    good.model("ns/lr")
    before = _daemon_fds(daemon, fd_dir)
    hostile = raw_connect(daemon.socket)
    try:
        _hello(hostile)
        r, w = os.pipe()
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] * _wire.MAX_FDS))]
        hostile.sendall(_wire.LENGTH.pack(_wire.MAX_MESSAGE))  # a message begun, never finished
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(600):  # 2,400 descriptors if the daemon took them all
                hostile.sendmsg([b"\0"], rights)
                sent += 1
        os.close(r)
        os.close(w)
        assert _closed(hostile), "the daemon keeps the connection"
        assert _daemon_fds(daemon, fd_dir) == before
        assert daemon.stats()["descriptors_refused"] >= _wire.MAX_FDS
        assert good.model("ns/lr@1").predict(images.X).shape == (16,)
        assert daemon.client().model("ns/lr").predict(images.X).shape == (16,)
    finally:
        hostile.close()


def test_descriptors_on_the_admin_socket_are_bounded(shelf: Shelf, images: Images) -> None:
    """On the admin socket, where ``publish`` takes one descriptor, a message may start with
    up to 4; more on the way (attached inside the message) are closed on arrival, and so is
    the connection. A publish is still served."""
    daemon = shelf.make()
    assert daemon.proc is not None
    fd_dir = Path(f"/proc/{daemon.proc.pid}/fd")
    before = _daemon_fds(daemon, fd_dir)
    sock = raw_connect(daemon.admin_socket)
    _hello(sock)
    r, w = os.pipe()
    header = _wire.LENGTH.pack(_wire.MAX_MESSAGE)
    sock.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] * 4))])
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(100):
            sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
    os.close(r)
    os.close(w)
    assert _closed(sock), "the daemon keeps the connection"
    sock.close()
    assert _daemon_fds(daemon, fd_dir) == before
    assert daemon.stats()["descriptors_refused"] >= 1
    image = Path(shelf.tmp / "lr.msi")
    image.write_bytes(images.bytes("logreg"))
    with AdminConnection(daemon.admin_socket) as admin, image.open("rb") as fh:
        assert admin.request({"op": "publish", "model": "ns/lr"}, (fh.fileno(),))["version"] == 1


def test_a_message_left_unfinished_is_timed_out(shelf: Shelf, images: Images) -> None:
    """Half a message, then silence: the connection is closed after ``frame_timeout`` (and a
    message sent in pieces within it is answered)."""
    daemon = shelf.make(frame_timeout=1.0)
    sock = raw_connect(daemon.socket)
    _hello(sock)
    frame = _wire.encode({"op": "ping", "id": 1})
    sock.sendall(frame[:3])
    time.sleep(0.3)
    sock.sendall(frame[3:])
    assert _wire.recv(sock) == ({"ok": True, "id": 1}, [])  # slow, but within the bound
    stalled = raw_connect(daemon.socket)
    _hello(stalled)
    stalled.sendall(frame[:5])
    assert _closed(stalled), "the daemon keeps a connection with half a message"
    assert daemon.stats()["frames_timed_out"] == 1
    _wire.send(sock, {"op": "ping", "id": 2})  # the patient one is still served
    assert _wire.recv(sock) == ({"ok": True, "id": 2}, [])
    sock.close()
    stalled.close()


def test_messages_in_pieces_on_many_connections_at_once(shelf: Shelf, images: Images) -> None:
    """The daemon reads every connection through one buffer: five connections each send two
    pipelined requests cut at different bytes, the pieces interleaved across connections, and
    every connection gets its own replies, in order."""
    daemon = shelf.make()
    socks = [raw_connect(daemon.socket) for _ in range(5)]
    streams = []
    for n, sock in enumerate(socks):
        _hello(sock)
        streams.append(
            _wire.encode({"op": "ping", "id": 10 * n + 1})
            + _wire.encode({"op": "ping", "id": 10 * n + 2})
        )
    cuts = [(0, 3 + n, 9 + 2 * n, len(s)) for n, s in enumerate(streams)]
    for piece in range(3):
        for sock, stream, cut in zip(socks, streams, cuts, strict=True):
            sock.sendall(stream[cut[piece] : cut[piece + 1]])
        time.sleep(0.05)  # each piece is its own read on the daemon's side
    for n, sock in enumerate(socks):
        assert _wire.recv(sock) == ({"ok": True, "id": 10 * n + 1}, [])
        assert _wire.recv(sock) == ({"ok": True, "id": 10 * n + 2}, [])
        sock.close()


def test_an_idle_connection_without_leases_is_closed_and_the_client_reconnects(
    shelf: Shelf, images: Images
) -> None:
    """After ``idle_timeout`` without a request, a connection that holds no lease is closed;
    one whose client maps a model keeps its lease however idle it is, and a client whose
    connection was closed reconnects by itself (issue 9, point 6)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(idle_timeout=1.0)
    idle = raw_connect(daemon.socket)
    _hello(idle)
    assert _closed(idle), "an idle connection without leases stays open"
    idle.close()
    assert daemon.stats()["connections_idle_closed"] == 1
    client = daemon.client()
    model = client.model("ns/lr")
    time.sleep(3.0)  # idle, three times over, but mapping a model
    status = daemon.admin("status")
    assert (status["connections"]["client"], status["leases"]) == (1, 1)
    assert daemon.stats()["connections_idle_closed"] == 1
    client.release("ns/lr")
    del model  # the mapping ends, its lease is released: now the connection is idle
    wait_for(lambda: daemon.admin("status")["connections"]["client"] == 0, what="idle close")
    assert daemon.stats()["connections_idle_closed"] == 2
    assert client.model("ns/lr").predict(images.X).shape == (16,)  # reconnected
    assert daemon.admin("status")["leases"] == 1


_HOG = """\
refused = []
held = []
for _ in range(8):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect({path!r})
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused: said why
        modelshelf.wire.send(sock, {{"op": "hello", "protocol": 1}})
    try:
        reply, fds = modelshelf.wire.recv(sock)
    except (EOFError, ConnectionResetError):
        reply, fds = {{"error": "closed"}}, []
    modelshelf.wire.close_fds(fds)
    if reply.get("ok"):
        held.append(sock)
    else:
        refused.append(f"{{reply['error']}}: {{reply.get('message')}}")
print(json.dumps({{"held": len(held), "refused": refused}}), flush=True)
sys.stdin.readline()
"""


def test_one_uid_cannot_take_every_slot(shelf: Shelf, images: Images, socket_dir: Path) -> None:
    """A user who opens connection after connection gets ``busy`` at the per-uid limit, and
    another user's client is still served (issue 9, point 6)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    hog, other = user("msfhog"), user("msfclient")
    daemon = shelf.make(
        socket=str(socket_dir / "s.sock"),
        socket_mode=0o666,
        max_connections=8,
        max_connections_per_uid=4,
        log_level="INFO",
        namespaces={"ns": {"uids": [0, other.uid], "gids": []}},
    )
    hogging = hog.popen(_HOG.format(path=daemon.socket))
    try:
        assert hogging.stdout is not None
        line = hogging.stdout.readline()
        assert line, hogging.stderr.read() if hogging.stderr else "the hog said nothing"
        got = json.loads(line)
        assert got["held"] == 4
        expected = f"busy: uid {hog.uid} already holds its limit of 4 client connections"
        assert all(r.startswith(expected) for r in got["refused"]), got
        assert "max_connections_per_uid" in got["refused"][0]
        script = f"""
            with Client({daemon.socket!r}) as client:
                print(client.model("ns/lr").predict({images.X.tolist()!r}).shape[0])
        """
        assert other.run(script) == "16"
        with Client(daemon.socket) as client:  # the daemon's own uid: not limited
            assert client.model("ns/lr").predict(images.X).shape == (16,)
        counters = daemon.stats()
        assert counters["connections_refused_uid"] == counters["connections_refused"] == 4
        assert daemon.logs().count("connection of pid") == 1  # logged at a bounded rate
    finally:
        hogging.kill()
        hogging.communicate()


def test_a_client_over_the_per_uid_limit_gets_busy(
    shelf: Shelf, images: Images, socket_dir: Path
) -> None:
    """What the application sees at the limit: ShelfBusy naming the setting."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    other = user("msfclient")
    daemon = shelf.make(
        socket=str(socket_dir / "s.sock"),
        socket_mode=0o666,
        max_connections_per_uid=1,
        namespaces={"ns": {"uids": [other.uid], "gids": []}},
    )
    script = f"""
        first = Client({daemon.socket!r})
        first.model("ns/lr")
        try:
            Client({daemon.socket!r}).model("ns/lr")
        except modelshelf.ShelfBusy as exc:
            print(type(exc).__name__, exc.exit_status, exc)
    """
    out = other.run(script)
    assert out.startswith("ShelfBusy 5 uid ") and "max_connections_per_uid" in out, out


# -- who answers on the socket (issue 9, point 4) -----------------------------------------------

_FAKE_DAEMON = """\
path, image = {path!r}, {image!r}
os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
os.chmod(path, 0o777)
listener.listen(16)
data = open(image, "rb").read()
import fcntl, modelshelf.board
board = os.memfd_create("board", os.MFD_ALLOW_SEALING)
os.write(board, modelshelf.board.MAGIC + bytes(modelshelf.board.HEADER_SIZE - 8))
fcntl.fcntl(board, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
model = os.memfd_create("model")
os.write(model, data)
print("LISTENING", flush=True)
while True:
    conn, _ = listener.accept()
    with conn:
        try:
            while True:
                message, fds = modelshelf.wire.recv(conn)
                modelshelf.wire.close_fds(fds)
                reply, out = {{"ok": True, "id": message.get("id"), "protocol": 1}}, []
                if message.get("op") == "hello":
                    out = [board]
                elif message.get("op") == "acquire":
                    reply.update(model="ns/lr", version=1, digest="0" * 64, size=len(data))
                    out = [model]
                modelshelf.wire.send(conn, reply, out)
        except (EOFError, OSError):
            pass
"""

_VICTIM = """\
def attempt(connect):
    try:
        print("ANSWERED", connect())
    except modelshelf.UntrustedDaemon as exc:
        print("UNTRUSTED", exc.exit_status, exc)

attempt(lambda: Client({socket!r}).model("ns/lr").predict({rows!r}).tolist())
attempt(lambda: modelshelf.admin.AdminConnection({admin!r}).request({{"op": "ping"}}))
"""


def _fake_daemon(owner: User, path: Path, image: Path) -> subprocess.Popen[str]:
    proc = owner.popen(_FAKE_DAEMON.format(path=str(path), image=str(image)))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "LISTENING":
        proc.kill()
        raise AssertionError(f"the fake daemon did not start: {proc.communicate()[1]}")
    return proc


def _readable_image(images: Images, directory: Path) -> Path:
    image = directory / "other.msi"
    image.write_bytes(images.bytes("logreg_c"))  # a model of the impostor's choosing
    image.chmod(0o644)
    return image


def test_a_socket_directory_planted_by_another_user(
    shelf: Shelf, images: Images, socket_dir: Path
) -> None:
    """Without XDG_RUNTIME_DIR, a user's default socket is /tmp/modelshelf-<uid>/. Another user
    makes that directory first and listens in it: the victim's Client and AdminConnection
    refuse to talk to it, naming the socket and both uids, and a daemon of the victim's refuses
    to start there (and leaves the impostor's socket alone)."""
    victim, attacker = user("msfvictim"), user("msfattacker")
    planted = Path(f"/tmp/modelshelf-{victim.uid}")
    shutil.rmtree(planted, ignore_errors=True)  # a leftover of an earlier run
    image = _readable_image(images, socket_dir)
    impostor = _fake_daemon(attacker, planted / "modelshelf.sock", image)
    try:
        assert planted.stat().st_uid == attacker.uid
        rows = images.X[:2].tolist()
        # the Client on its default path; the admin connection told where (same listener)
        script = _VICTIM.format(socket=None, admin=str(planted / "modelshelf.sock"), rows=rows)
        out = victim.run(script).splitlines()
        assert [line.split()[:2] for line in out] == [["UNTRUSTED", "9"]] * 2, out
        for line in out:
            assert f"answering on {planted}/" in line and f"runs as uid {attacker.uid}" in line
            assert f"expected root or this process's uid {victim.uid}" in line
            assert f"belongs to uid {attacker.uid}" in line and "MODELSHELF_DAEMON_UID" in line
        # the daemon's side: it will not start in a directory it does not own
        daemon = shelf.make(socket=str(planted / "modelshelf.sock"), start=False)
        proc = subprocess.run(
            [sys.executable, "-m", "modelshelfd", "--config", str(daemon.config_path)],
            env=daemon.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert f"the socket directory {planted} is owned by uid {attacker.uid}" in proc.stderr
        assert "impersonate" in proc.stderr
        assert (planted / "modelshelf.sock").is_socket()  # not the daemon's to unlink
    finally:
        impostor.kill()
        impostor.communicate()
        shutil.rmtree(planted, ignore_errors=True)


def test_the_daemon_uid_a_client_expects(shelf: Shelf, images: Images, socket_dir: Path) -> None:
    """A daemon of root is trusted by everyone; MODELSHELF_DAEMON_UID (or daemon_uid=) names
    the one uid a client accepts; a daemon running as its own user is trusted through a socket
    directory that only it (or root) could have made."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    app = user("msfclient")
    daemon = shelf.make(
        socket=str(socket_dir / "s.sock"),
        socket_mode=0o666,
        namespaces={"ns": {"uids": [0, app.uid], "gids": []}},
    )
    rows = images.X[:2].tolist()
    expected = daemon.client().model("ns/lr").predict(rows).tolist()
    script = _VICTIM.format(socket=daemon.socket, admin=daemon.socket, rows=rows)
    first = app.run(script).splitlines()[0]
    assert first == f"ANSWERED {expected}"  # root: trusted
    assert app.run(script, env={"MODELSHELF_DAEMON_UID": "0"}).splitlines()[0] == first
    out = app.run(script, env={"MODELSHELF_DAEMON_UID": "12345"}).splitlines()
    assert [line.split()[:2] for line in out] == [["UNTRUSTED", "9"]] * 2, out
    assert "runs as uid 0; expected uid 12345 (daemon_uid, or MODELSHELF_DAEMON_UID)" in out[0]
    with pytest.raises(UntrustedDaemon, match="expected uid 12345"):
        Client(daemon.socket, daemon_uid=12345).model("ns/lr")
    # a daemon of its own user, in a directory only that user could have made (root's
    # /run, then the user's directory, as systemd's RuntimeDirectory makes it)
    owner = user("msfdaemon")
    root = Path(tempfile.mkdtemp(prefix="msf-", dir="/run"))
    try:
        root.chmod(0o755)
        run = root / "modelshelf"
        run.mkdir(mode=0o755)
        os.chown(run, owner.uid, owner.gid)
        fake = _fake_daemon(owner, run / "modelshelf.sock", _readable_image(images, socket_dir))
        try:
            path = str(run / "modelshelf.sock")
            script = _VICTIM.format(socket=path, admin=path, rows=rows)
            out = app.run(script)
            assert [line.split()[0] for line in out.splitlines()] == ["ANSWERED"] * 2, out
            root.chmod(0o777)  # now anyone could have made that directory
            out = app.run(script)
            assert [line.split()[0] for line in out.splitlines()] == ["UNTRUSTED"] * 2, out
            assert f"{root} is writable by others" in out
        finally:
            fake.kill()
            fake.communicate()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_user_refused_by_the_admin_socket_is_told_access_is_denied(
    shelf: Shelf, socket_dir: Path
) -> None:
    """The admin socket is 0600: another user's connect fails with EACCES, which is not "no
    daemon answers" (what the command line said before)."""
    other = user("msfclient")
    daemon = shelf.make(socket=str(socket_dir / "s.sock"), socket_mode=0o666)
    out = other.run(
        f"""
        try:
            modelshelf.admin.AdminConnection({daemon.admin_socket!r}, timeout=10)
        except modelshelf.errors.ShelfError as exc:
            print(type(exc).__name__, exc.code, exc.exit_status, str(exc))
        """
    )
    assert out.startswith("AccessDenied access_denied 4 the admin socket"), out
    assert "admin_uids" in out


def test_a_socket_removed_under_the_daemon_is_bound_again(shelf: Shelf, images: Images) -> None:
    """Removed (a /tmp cleaner): the daemon ran on, healthy by every check, unreachable by any
    new client, and a new daemon could not start (the cache lock)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(log_level="INFO")
    directory = Path(daemon.socket).parent
    held = daemon.client()
    model = held.model("ns/lr")
    for path in (daemon.socket, daemon.admin_socket):
        os.unlink(path)
    wait_for(lambda: os.path.exists(daemon.socket) and os.path.exists(daemon.admin_socket),
             timeout=15, what="the sockets bound again")  # fmt: skip
    assert stat.S_IMODE(os.stat(daemon.admin_socket).st_mode) == 0o600
    with Client(daemon.socket) as fresh:
        assert fresh.model("ns/lr").predict(images.X).shape == (16,)
    assert model.predict(images.X).shape == (16,)  # the connection that was there stays
    assert daemon.stats()["sockets_rebound"] == 2
    assert "socket " + daemon.socket + " was removed under the daemon: bound again" in daemon.logs()
    # another file where the socket was: left alone, said, not ready until it goes
    os.unlink(daemon.socket)
    Path(daemon.socket).write_text("not yours")
    wait_for(lambda: "is no longer this daemon's" in daemon.logs(), timeout=15, what="said")
    assert daemon.admin("status")["ready"] is False
    assert Path(daemon.socket).read_text() == "not yours"
    os.unlink(daemon.socket)
    wait_for(lambda: daemon.admin("status")["ready"], timeout=15, what="ready again")
    assert directory.is_dir()
    daemon.stop()
    assert not os.path.exists(daemon.socket)  # its own, removed at the stop
