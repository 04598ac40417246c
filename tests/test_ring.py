"""RingBuffer: exactly-once in-order delivery across threads, counted overruns, newest-window reads.

Samples are a counting sequence (float32 holds integers exactly up to 2**24), so any lost, repeated,
reordered or torn sample shows up as a wrong value.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from livesound.audio.ring import RingBuffer


def counting(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


@pytest.fixture
def fast_switching():
    """Switch threads every 10 µs instead of 5 ms, so producer and consumer interleave at many points."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def _run(producer, consumer, timeout: float = 30.0) -> None:
    threads = [threading.Thread(target=f, daemon=True) for f in (producer, consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "thread did not finish"


def test_concurrent_exactly_once_in_order(fast_switching):
    ring, total = RingBuffer(1000), 2_000_000
    got: list[np.ndarray] = []
    done = threading.Event()

    def producer():
        rng, pos = np.random.default_rng(0), 0
        while pos < total:
            n = min(int(rng.integers(1, 400)), total - pos)
            while ring.capacity - ring.available < n:  # the file path's back-pressure: never overwrite
                time.sleep(0)
            ring.write(counting(pos, n))
            pos += n
        done.set()

    def consumer():
        rng = np.random.default_rng(1)
        while not (done.is_set() and ring.available == 0):
            block = ring.read(int(rng.integers(1, 700)))
            if len(block):
                got.append(block)
            else:
                time.sleep(0)

    _run(producer, consumer)
    out = np.concatenate(got)
    np.testing.assert_array_equal(out, counting(0, total))  # every sample once, in order
    assert ring.total_written == total
    assert ring.overruns == 0 and ring.dropped_samples == 0
    assert total // ring.capacity >= 1000  # many wraparounds


def test_concurrent_overwrite_loses_only_counted_samples(fast_switching):
    """A producer that never waits overruns a slow consumer: what arrives is still in order and untorn,
    and what does not arrive is exactly what ``dropped_samples`` reports."""
    ring, total = RingBuffer(1000), 1_000_000
    got: list[np.ndarray] = []
    done = threading.Event()

    def producer():
        rng, pos = np.random.default_rng(2), 0
        while pos < total:
            n = min(int(rng.integers(1, 900)), total - pos)
            ring.write(counting(pos, n))
            pos += n
        done.set()

    def consumer():
        rng = np.random.default_rng(3)
        while not (done.is_set() and ring.available == 0):
            block = ring.read(int(rng.integers(1, 300)))
            if len(block):
                got.append(block)
            if rng.random() < 0.05:
                time.sleep(1e-4)  # fall behind now and then

    _run(producer, consumer)
    out = np.concatenate(got)
    assert np.all(np.diff(out) > 0)  # in order, no repeats, no sample from a later lap
    assert len(out) + ring.dropped_samples == total
    assert ring.dropped_samples > 0 and ring.overruns > 0
    # Every received sample is at its own position: received values are exact integers below total.
    assert out[-1] == total - 1 and np.all(out == np.round(out))


def test_overrun_without_reading_is_counted_and_latest_is_exact():
    ring = RingBuffer(1000)
    for k in range(10):
        ring.write(counting(300 * k, 300))
    assert ring.total_written == 3000
    assert ring.overruns == 7  # writes 4..10 each overwrote unread samples
    assert ring.dropped_samples == 2000
    assert ring.available == 1000
    np.testing.assert_array_equal(ring.read_latest(1000), counting(2000, 1000))
    np.testing.assert_array_equal(ring.read_latest(10), counting(2990, 10))
    np.testing.assert_array_equal(ring.read_available(), counting(2000, 1000))  # the oldest kept, in order
    assert ring.dropped_samples == 2000 and ring.available == 0


def test_read_latest_zero_fills_before_enough_data():
    ring = RingBuffer(100)
    np.testing.assert_array_equal(ring.read_latest(8), np.zeros(8, np.float32))
    ring.write(counting(1, 3))
    np.testing.assert_array_equal(ring.read_latest(8), [0, 0, 0, 0, 0, 1, 2, 3])
    assert ring.available == 3  # read_latest does not consume


def test_read_latest_into_preallocated_out():
    ring, out = RingBuffer(50), np.full(20, -1.0, np.float32)
    ring.write(counting(0, 45))
    ring.write(counting(45, 30))  # wraps
    assert ring.read_latest(20, out=out) is out
    np.testing.assert_array_equal(out, counting(55, 20))
    with pytest.raises(ValueError):
        ring.read_latest(20, out=np.zeros(20, np.float64))
    with pytest.raises(ValueError):
        ring.read_latest(51)


def test_read_latest_consume_counts_only_real_lag():
    """The live loop reads the newest window with consume=True: skipping older audio is not an overrun,
    coming back more than ``capacity`` samples later is."""
    ring = RingBuffer(1000)
    for k in range(20):
        ring.write(counting(256 * k, 256))
        if k % 2:
            ring.read_latest(400, consume=True)
    assert ring.overruns == 0 and ring.dropped_samples == 0 and ring.available == 0
    ring.write(counting(5120, 1500))  # a stall longer than the ring
    assert ring.overruns == 1 and ring.dropped_samples == 500
    np.testing.assert_array_equal(ring.read_latest(1000, consume=True), counting(5620, 1000))
    assert ring.dropped_samples == 500 and ring.available == 0


def test_block_larger_than_capacity_keeps_newest():
    ring = RingBuffer(100)
    ring.write(counting(0, 250))
    assert ring.total_written == 250 and ring.overruns == 1 and ring.dropped_samples == 150
    np.testing.assert_array_equal(ring.read_available(), counting(150, 100))


def test_wraparound_with_partial_reads():
    ring = RingBuffer(7)
    expect, pos = [], 0
    for n, r in [(5, 3), (4, 6), (7, 2), (2, 8), (1, 1)]:
        ring.write(counting(pos, n))
        pos += n
        expect.append(ring.read(r))
    np.testing.assert_array_equal(np.concatenate(expect), counting(0, pos))
    assert ring.read(5).shape == (0,)


def test_write_converts_and_rejects_bad_blocks():
    ring = RingBuffer(10)
    ring.write(np.array([1.5, 2.5]))  # float64 accepted (converted)
    ring.write(np.zeros(0, np.float32))
    np.testing.assert_array_equal(ring.read_available(), [1.5, 2.5])
    with pytest.raises(ValueError):
        ring.write(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError):
        RingBuffer(0)
