"""Receive-side settings and kernel drop counts of one UDP socket (an RTP leg).

A UDP datagram that arrives while the socket's receive buffer is full is dropped by the kernel, before any
sequence-number accounting can see it: at the start of a stream (nothing read yet) such a loss is invisible to
RTP. A generous buffer absorbs a stall of the event loop, and the kernel's own per-socket drop counter (the last
column of /proc/net/udp, Linux) makes any loss that still happens show in the stream's counters.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

# 1 MiB holds ~5,000 G.711 packets of 20 ms in the kernel's accounting (~200 B each): over a minute per leg. The
# kernel caps it at net.core.rmem_max; what it grants is what getsockopt reports (doubled for its bookkeeping).
RECEIVE_BUFFER_BYTES = 1 << 20
_PROC_TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def enlarge_receive_buffer(sock: socket.socket, size_bytes: int = RECEIVE_BUFFER_BYTES) -> int:
    """Ask for a `size_bytes` receive buffer; returns what the kernel granted (0 if unknown)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size_bytes)
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    except OSError:
        return 0


def socket_inode(sock: socket.socket) -> int | None:
    """The socket's inode, which names it in /proc/net/udp."""
    try:
        return os.fstat(sock.fileno()).st_ino
    except OSError:
        return None


def kernel_drops(inode: int | None, tables: tuple[Path, ...] = _PROC_TABLES) -> int | None:
    """Datagrams the kernel dropped for the socket with `inode` (None where /proc does not tell: not Linux, or
    the socket is already closed)."""
    if inode is None:
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if len(cols) >= 13 and cols[9] == str(inode):
                return int(cols[12])
    return None
