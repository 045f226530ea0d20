"""The board that spreads keep-alive connections over gunicorn workers
(mapserver/conn_shares.py): who answers ``Connection: close`` and who waits before accepting.
The live behaviour, two real workers, is in test_serving_live.py."""

from __future__ import annotations

import os

import pytest

from mapserver import conn_shares


@pytest.fixture(autouse=True)
def empty_board():
    """The board is per process: this test process's own copy, emptied around each test."""
    for slot in range(conn_shares.SLOTS):
        conn_shares.release(slot, _pid(slot))
    yield
    for slot in range(conn_shares.SLOTS):
        conn_shares.release(slot, _pid(slot))


def _pid(slot: int) -> int:
    pid, _n = conn_shares._SLOT.unpack_from(conn_shares._board, slot * conn_shares._SLOT.size)
    return pid


def test_a_worker_alone_never_releases_or_waits():
    conn_shares.publish(3, 8)
    assert not conn_shares.should_release(3, 8)
    assert conn_shares.accept_delay(3, 8) == 0.0


def test_the_worker_above_its_fair_share_releases():
    conn_shares.publish(1, 8)
    conn_shares.publish(2, 0)
    assert conn_shares.should_release(1, 8)       # 8 of 8: share 4
    assert not conn_shares.should_release(2, 0)
    assert conn_shares.should_release(1, 5)       # 5 + 0: share 3 (rounded up)
    conn_shares.publish(2, 3)
    assert not conn_shares.should_release(1, 4)   # 4 + 3: share 4
    assert not conn_shares.should_release(2, 3)
    conn_shares.publish(2, 4)
    assert not conn_shares.should_release(1, 4)   # even: nobody moves


def test_uneven_totals_do_not_churn():
    """12 connections on two workers, 6 and 6: both at their share, nobody releases (a rule
    of "more than the threads" would close a connection on every response here)."""
    conn_shares.publish(1, 6)
    conn_shares.publish(2, 6)
    assert not conn_shares.should_release(1, 6)
    assert not conn_shares.should_release(2, 6)


def test_accept_waits_a_millisecond_per_connection_above_the_least_loaded():
    conn_shares.publish(1, 5)
    conn_shares.publish(2, 2)
    conn_shares.publish(3, 4)
    assert conn_shares.accept_delay(2, 2) == 0.0
    assert conn_shares.accept_delay(1, 5) == pytest.approx(0.003)
    assert conn_shares.accept_delay(3, 4) == pytest.approx(0.002)
    assert conn_shares.accept_delay(1, 40) == conn_shares.DELAY_MAX


def test_an_exited_worker_stops_counting_unless_its_slot_was_taken_over():
    conn_shares.publish(1, 8)
    conn_shares.publish(2, 0)
    me = os.getpid()
    conn_shares.release(2, me + 1)    # another pid: a newer worker owns the slot now
    assert 2 in conn_shares.counts()
    conn_shares.release(2, me)
    assert conn_shares.counts() == {1: 8}
    assert not conn_shares.should_release(1, 8)
