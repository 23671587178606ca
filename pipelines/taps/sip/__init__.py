"""SIP and SIPREC: message parsing, SDP, recording metadata and the recording server."""
