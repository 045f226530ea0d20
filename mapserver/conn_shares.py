"""How many client connections each gunicorn worker holds, on a board all workers can read, so
that keep-alive connections end up spread evenly over them (issue 13).

Why: every worker waits on the same listening socket, and a keep-alive connection stays with
the worker that accepted it for as long as the client keeps it. Stock gthread lets whichever
worker is awake take them: 8 clients connecting while the other worker was still warming up
(at boot, or after a ``max_requests`` restart) all stayed on one worker, which queued their
renders behind its one render slot while the other idled: half the requests per second. The
same holds for nginx's pool of upstream keep-alive connections.

What: the board is an anonymous shared memory map made when this module is imported, which is
in the gunicorn master before it forks (the worker class imports it), so every worker sees the
same bytes. Each worker owns one slot, ``age % SLOTS`` (gunicorn numbers the workers it starts),
and writes its pid and its current connection count there; the master clears the slot when the
worker exits (``child_exit``). Two live workers share a slot only after 64 workers were started
while one of them lived; a wrong count then costs only balance, never a request.

Policy (:func:`should_release`, :func:`accept_delay`): a worker that holds more than its fair
share of all connections (rounded up) answers with ``Connection: close``, so the client
reconnects; a worker that holds more than the least loaded live worker waits a moment before
it accepts, so that the least loaded one takes the new connection first.
"""

from __future__ import annotations

import math
import mmap
import os
import struct

SLOTS = 64
_SLOT = struct.Struct("=qq")  # pid, connections
# per connection above the least loaded worker, and at most (seconds)
DELAY_STEP = 0.001
DELAY_MAX = 0.01

_board = mmap.mmap(-1, SLOTS * _SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS: shared across fork


def slot_of(age: int) -> int:
    return age % SLOTS


def publish(slot: int, connections: int) -> None:
    """This worker (``slot``) holds ``connections`` client connections now."""
    _SLOT.pack_into(_board, slot * _SLOT.size, os.getpid(), connections)


def release(slot: int, pid: int) -> None:
    """The worker ``pid`` is gone (called in the master): its slot no longer counts, unless a
    newer worker already took it over."""
    old, _n = _SLOT.unpack_from(_board, slot * _SLOT.size)
    if old == pid:
        _SLOT.pack_into(_board, slot * _SLOT.size, 0, 0)


def counts() -> dict[int, int]:
    """Connections per live worker slot (slots with a pid)."""
    out = {}
    for slot in range(SLOTS):
        pid, n = _SLOT.unpack_from(_board, slot * _SLOT.size)
        if pid:
            out[slot] = max(0, n)
    return out


def should_release(slot: int, mine: int) -> bool:
    """True when this worker holds more than its fair share of all the workers' connections:
    its next response closes the connection, and the client's reconnect goes to the workers'
    shared listening socket again."""
    board = counts()
    board[slot] = mine
    if len(board) < 2:
        return False
    return mine > math.ceil(sum(board.values()) / len(board))


def accept_delay(slot: int, mine: int) -> float:
    """Seconds to wait before accepting a new connection: none for the least loaded worker, a
    millisecond per connection held above it otherwise (at most :data:`DELAY_MAX`). After the
    wait the worker accepts anyway, so a connection is never left unaccepted because another
    worker is slow to wake."""
    others = [n for s, n in counts().items() if s != slot]
    if not others:
        return 0.0
    extra = mine - min(others)
    return 0.0 if extra <= 0 else min(DELAY_STEP * extra, DELAY_MAX)
