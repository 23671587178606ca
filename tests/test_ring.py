"""The recent-audio ring returns exactly the samples written at each media time."""

import numpy as np

from pipelines.ring import RATE_HZ, AudioRing


def test_ring_spans_by_media_time_across_wraparound():
    ring = AudioRing(seconds=1.0)
    signal = (np.arange(int(2.5 * RATE_HZ)) % 30000).astype(np.int16)
    for i in range(0, len(signal), 700):  # odd block size to cross the wrap point mid-block
        ring.write(signal[i : i + 700])
    got = ring.span(1.6, 2.4)
    assert np.array_equal(got, signal[int(1.6 * RATE_HZ) : int(2.4 * RATE_HZ)])
    # older than the capacity: only the retained tail comes back
    assert np.array_equal(ring.span(0.0, 2.0), signal[int(1.5 * RATE_HZ) : int(2.0 * RATE_HZ)])
    assert len(ring.span(3.0, 4.0)) == 0
