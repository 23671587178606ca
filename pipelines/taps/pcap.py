"""Write RTP streams as a classic libpcap file (Ethernet/IPv4/UDP), e.g. for SIPp's `play_pcap_audio`.

SIPp replays every UDP packet of the capture to the remote media port plus (packet's destination port - the
lowest destination port in the file), so legs captured to ports base, base+2, ... reach an SRS that answered
with consecutive ports. The packet times set the pacing.
"""

from __future__ import annotations

import struct
from pathlib import Path

_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # linktype 1 = Ethernet


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(
    payload: bytes,
    src_port: int,
    dst_port: int,
    src_ip: bytes = b"\x7f\x00\x00\x01",
    dst_ip: bytes = b"\x7f\x00\x00\x01",
) -> bytes:
    """One Ethernet frame carrying an IPv4/UDP datagram (UDP checksum 0: optional over IPv4)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_rtp_pcap(path: str | Path, legs: list[tuple[int, list[bytes]]], ptime_s: float = 0.02) -> None:
    """Write legs [(dst_port, rtp datagrams)] interleaved, packet i of every leg at time i * ptime_s."""
    with open(path, "wb") as f:
        f.write(_GLOBAL_HEADER)
        for i in range(max((len(p) for _, p in legs), default=0)):
            t_us = round(i * ptime_s * 1e6)
            for dst_port, packets in legs:
                if i >= len(packets):
                    continue
                frame = udp_frame(packets[i], dst_port, dst_port)
                f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
                f.write(frame)
