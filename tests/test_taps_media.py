"""RTP, jitter buffer, codecs and the RTP -> session stream, on the shared call recordings."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipelines.config import SessionConfig
from pipelines.taps import codecs
from pipelines.taps.jitter import JitterBuffer
from pipelines.taps.media import RtpStreamReceiver, StreamFormat
from pipelines.taps.rtp import (
    RtpError,
    RtpPacket,
    TelephoneEvent,
    build_rtp,
    build_telephone_event,
    is_rtcp,
    parse_rtp,
)
from pipelines.taps.stats import StreamStats
from tests.taps_fakes import FakeSession, load_call, snr_db


def test_g711_tables_match_audioop_bit_for_bit() -> None:
    audioop = pytest.importorskip("audioop")
    every = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    assert codecs.ulaw_encode(every) == audioop.lin2ulaw(every.tobytes(), 2)
    assert codecs.alaw_encode(every) == audioop.lin2alaw(every.tobytes(), 2)
    all_codes = bytes(range(256))
    assert codecs.ulaw_decode(all_codes).tobytes() == audioop.ulaw2lin(all_codes, 2)
    assert codecs.alaw_decode(all_codes).tobytes() == audioop.alaw2lin(all_codes, 2)


def test_pcmu_round_trip_of_a_real_call_is_exact_and_pcma_is_close() -> None:
    call = load_call("dev_en_01", seconds=20)
    for ch in (0, 1):
        x = call[:, ch]
        assert np.array_equal(codecs.ulaw_decode(codecs.ulaw_encode(x)), x)
        assert snr_db(x, codecs.alaw_decode(codecs.alaw_encode(x))) > 30


def _delay_aligned_snr(ref: np.ndarray, out: np.ndarray) -> float:
    from pipelines.taps.eval_cli import _best_lag

    lag = _best_lag(ref, out, max_lag=400)
    return snr_db(ref[: ref.size - lag], out[lag:])


@pytest.mark.parametrize("spec", [codecs.G722, codecs.OPUS])
def test_pyav_codecs_round_trip_real_speech(spec: codecs.CodecSpec) -> None:
    import soxr

    call = load_call("dev_en_02", seconds=4)
    wide = soxr.resample(call[:, 0].astype(np.float32), 8000, spec.sample_rate_hz).astype(np.int16)
    frame = spec.sample_rate_hz // 50
    enc = codecs.PyAVEncoder(spec)
    dec = codecs.make_decoder(spec)
    out = []
    for i in range(0, wide.size - frame + 1, frame):
        for payload in enc.encode(wide[i : i + frame]):
            out.append(dec.decode(payload))
    decoded = np.concatenate(out)
    assert abs(decoded.size - wide.size) <= 2 * frame
    # Lossy codecs: the waveform survives (G.722 is ADPCM, near-waveform; Opus is perceptual, lower SNR).
    assert _delay_aligned_snr(wide, decoded) > (15 if spec is codecs.G722 else 3)


def test_codec_errors_are_clean() -> None:
    with pytest.raises(codecs.CodecError):
        codecs.make_decoder(codecs.OPUS).decode(b"")
    with pytest.raises(codecs.CodecError):
        codecs.make_decoder(codecs.CodecSpec("L16", 16000, 16000)).decode(b"\x00\x01\x02")
    assert codecs.codec_from_rtpmap("G722", 8000) is codecs.G722
    assert codecs.codec_from_rtpmap("opus", 48000, 2) is codecs.OPUS
    assert codecs.codec_from_rtpmap("GSM", 8000) is None


def test_rtp_round_trip_and_malformed_packets() -> None:
    pkt = RtpPacket(
        payload_type=0,
        sequence_number=65535,
        timestamp=2**32 - 1,
        ssrc=0xDEADBEEF,
        payload=b"\xff" * 160,
        marker=True,
        csrcs=(7,),
    )
    assert parse_rtp(build_rtp(pkt)) == pkt
    raw = build_rtp(RtpPacket(0, 1, 2, 3, b"abcd"))
    # header extension (profile 0xBEDE, one word) and padding (3 bytes) are stripped
    ext = (
        bytes([raw[0] | 0x10 | 0x20])
        + raw[1:12]
        + b"\xbe\xde\x00\x01"
        + b"\x01\x02\x03\x04"
        + b"abcd"
        + b"\x00\x00\x03"
    )
    assert parse_rtp(ext).payload == b"abcd"
    for bad in (
        b"",
        raw[:11],
        b"\x40" + raw[1:],
        bytes([raw[0] | 0x0F]) + raw[1:12],
        bytes([raw[0] | 0x20]) + raw[1:-1] + b"\x00",
        bytes([raw[0] | 0x10]) + raw[1:12] + b"\xbe",
    ):
        with pytest.raises(RtpError):
            parse_rtp(bad)
    rtcp_rr = bytes([0x81, 201, 0, 7]) + b"\x00" * 28
    assert is_rtcp(rtcp_rr) and not is_rtcp(raw)
    with pytest.raises(RtpError):
        parse_rtp(rtcp_rr)


def _packets(x: np.ndarray, start_seq: int = 100, start_ts: int = 1000, frame: int = 160) -> list[RtpPacket]:
    return [
        RtpPacket(
            0,
            (start_seq + i) & 0xFFFF,
            (start_ts + i * frame) & 0xFFFFFFFF,
            42,
            codecs.ulaw_encode(x[o : o + frame]),
        )
        for i, o in enumerate(range(0, x.size - frame + 1, frame))
    ]


def test_jitter_buffer_reorders_counts_duplicates_loss_and_late_across_wrap() -> None:
    stats = StreamStats()
    jb = JitterBuffer(8000, stats, depth_packets=4)
    seqs = [65533, 65535, 65534, 0, 0, 2, 3, 4, 5, 6, 1, 7]  # 1 arrives after its slot was given up
    out = []
    for i, s in enumerate(seqs):
        out += [p.sequence_number for p in jb.push(RtpPacket(0, s, s * 160, 1, b"x"), arrival_s=i * 0.02)]
    out += [p.sequence_number for p in jb.flush()]
    assert out == [65533, 65534, 65535, 0, 2, 3, 4, 5, 6, 7]
    assert (stats.packets_duplicate, stats.packets_lost, stats.packets_late) == (1, 1, 1)
    assert stats.packets_reordered == 1 and stats.packets_received == 12


def test_jitter_buffer_declares_loss_after_max_delay_and_restarts_on_jump() -> None:
    stats = StreamStats()
    jb = JitterBuffer(8000, stats, depth_packets=50, max_delay_s=0.1)
    assert jb.push(RtpPacket(0, 10, 0, 1, b""), 0.0) == []  # priming
    assert jb.push(RtpPacket(0, 12, 320, 1, b""), 0.02) == []
    assert [p.sequence_number for p in jb.push(RtpPacket(0, 13, 480, 1, b""), 0.2)] == [10, 12, 13]
    assert stats.packets_lost == 1
    assert [p.sequence_number for p in jb.push(RtpPacket(0, 40000, 9, 2, b""), 0.3)] == [40000]
    assert stats.resyncs == 1


async def test_rtp_stream_feeds_session_with_loss_reorder_duplicates_and_dtmf() -> None:
    call = load_call("dev_en_03", seconds=30)
    customer = call[:, 1]
    pkts = _packets(customer, start_seq=65000, start_ts=2**32 - 8000)
    rng = random.Random(5)
    lost = {i for i in range(1, len(pkts) - 1) if rng.random() < 0.03}
    sent = [p for i, p in enumerate(pkts) if i not in lost]
    for i in range(0, len(sent) - 3, 17):  # local reordering and a few duplicates
        sent[i], sent[i + 2] = sent[i + 2], sent[i]
    sent = sent[:300] + [sent[299]] + sent[300:]
    # A DTMF "5" of 100 ms in the middle: three progress packets and the end packet three times.
    mid = len(sent) // 2
    dtmf_ts = sent[mid].timestamp
    base_seq = pkts[-1].sequence_number
    dtmf = [
        RtpPacket(
            101,
            base_seq + 1 + k,
            dtmf_ts,
            42,
            build_telephone_event(TelephoneEvent(5, k >= 3, 10, 160 * min(k + 1, 4))),
        )
        for k in range(6)
    ]
    # Give the DTMF packets sequence numbers after the audio so they do not create false loss in the middle.
    session = FakeSession("t", SessionConfig(channel_names=("agent", "customer"), sample_rate_hz=8000))
    rx = RtpStreamReceiver(session, 1, StreamFormat({0: codecs.PCMU}, dtmf_payload_type=101))
    for i, p in enumerate(sent):
        await rx.on_datagram(build_rtp(p), arrival_s=i * 0.02)
    await rx.on_datagram(b"\x80\xc9\x00\x01" + b"\x00" * 4, arrival_s=99.0)  # RTCP RR: tolerated
    await rx.on_datagram(b"\x80\x00\x00", arrival_s=99.0)  # truncated
    await rx.on_datagram(build_rtp(RtpPacket(96, 1, 1, 42, b"xx")), arrival_s=99.0)  # unknown payload type
    for k, p in enumerate(dtmf):
        await rx.on_datagram(build_rtp(p), arrival_s=100 + k * 0.02)
    await rx.finish()
    got = session.samples(1)
    n_frames = len(pkts)
    assert got.size == n_frames * 160  # the timeline is kept: lost frames are concealed, not dropped
    for i in range(n_frames):  # every received frame is bit exact where it belongs on the timeline
        ref = customer[i * 160 : (i + 1) * 160]
        if i not in lost:
            assert np.array_equal(got[i * 160 : (i + 1) * 160], ref)
    st = rx.stats
    assert st.packets_lost == len(lost)
    assert st.packets_duplicate == 1 and st.packets_reordered > 0
    assert st.rtcp_packets == 1 and st.packets_invalid == 2
    assert abs(st.concealed_s - st.packets_lost * 0.02) < 1e-6
    assert session.events_of("dtmf") == [
        {"digit": "5", "duration_ms": 80.0, "channel": 1, "at_s": round(got.size / 8000, 3)}
    ]
    assert snr_db(customer[: got.size], got) > 10  # concealment keeps the whole-call waveform close


def test_eval_taps_reports_exact_pcmu_and_a_kept_timeline_under_loss(shared_data) -> None:  # type: ignore[no-untyped-def]
    from pipelines.taps.eval_cli import run_eval

    result = run_eval(shared_data / "calls" / "dev", 1, 15.0, [0.0, 0.05], 5.0, ["PCMU", "G722"], 3)
    s = result["summary"]
    assert s["PCMU@loss=0"]["snr_db_mean"] == 99.0  # bit exact end to end
    assert (
        s["PCMU@loss=0"]["timeline_error_samples_max"] == 0
        and s["G722@loss=0"]["timeline_error_samples_max"] == 0
    )
    assert s["G722@loss=0"]["snr_db_mean"] > 20
    assert (
        2.0 < s["PCMU@loss=0.05"]["loss_counted_pct"] < 10.0
    )  # the receiver counts what the network dropped
    assert s["PCMU@loss=0.05"]["snr_db_mean"] < s["PCMU@loss=0"]["snr_db_mean"]


async def test_stream_is_resampled_to_the_session_rate() -> None:
    """A G.711 leg in a 16 kHz session (a call that also has a G.722 leg) arrives at 16 kHz, same duration."""
    x = load_call("dev_en_14", seconds=4)[:, 0]
    session = FakeSession("r", SessionConfig(channel_names=("agent", "customer"), sample_rate_hz=16000))
    rx = RtpStreamReceiver(session, 0, StreamFormat({0: codecs.PCMU}))
    for i, p in enumerate(_packets(x, start_seq=1, start_ts=0)):
        await rx.on_datagram(build_rtp(p), arrival_s=i * 0.02)
    await rx.finish()
    got = session.samples(0)
    assert session.rates[0] == {16000}
    assert abs(got.size - 2 * x.size) <= 2 * 160  # the streaming resampler holds back a few ms at most
    import soxr

    ref = soxr.resample(x, 8000, 16000)
    lag = (
        int(np.argmax(np.correlate(ref[16000:24000].astype(float), got[16000:24000].astype(float), "full")))
        - 7999
    )
    assert snr_db(ref[16000 : 16000 + 8000], got[16000 - lag : 16000 - lag + 8000]) > 20
