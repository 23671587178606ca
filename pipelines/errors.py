"""Errors the pipeline raises at its boundary (mapped to close codes / HTTP statuses by the API)."""


class CapacityExceeded(Exception):
    """No room for another session or channel: refuse clearly (WebSocket close 1013, HTTP 503, SIP 503)."""


class BadAudio(ValueError):
    """Audio that cannot be accepted as sent (odd-length PCM, wrong rate, unknown channel)."""


class SessionClosed(RuntimeError):
    """Audio or events pushed to a session that has already ended."""
