"""Sign-in throttling: after too many failures for one username from one address, or from one address over
all usernames, further attempts are refused for the rest of the window (brute force and password spraying)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    """Sliding-window failure counter. `retry_after_s()` > 0 means refuse; `failed()` records a failure."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys  # bounded memory under a flood of distinct usernames
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, address: str, username: str) -> tuple[tuple[str, int], ...]:
        # per address over every username: a looser bound, so a shared NAT is not locked out by one person
        return ((f"u:{address}:{username.lower()}", self.max_failures), (f"a:{address}", self.max_failures * 4))

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after_s(self, address: str, username: str) -> float:
        now = self._clock()
        with self._lock:
            wait = 0.0
            for key, limit in self._keys(address, username):
                q = self._recent(key, now)
                if len(q) >= limit:
                    wait = max(wait, self.window_s - (now - q[0]))
            return wait

    def failed(self, address: str, username: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._fails) >= self._max_keys:
                self._fails.clear()  # crude but bounded; the window restarts for everyone
            for key, _ in self._keys(address, username):
                self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._fails.pop(self._keys(address, username)[0][0], None)
