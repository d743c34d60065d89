"""The sockets under abuse (issue 9, points 4 to 7): a flood of connections does not stall the
others; a peer cannot pin descriptors, hold every slot or sit on a half-sent message; and a
client never talks to a socket another user planted."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from modelshelf.store import Store

from .conftest import Images, Shelf

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
