"""Telephony and RTC taps: protocol endpoints that turn calls into harken sessions (agent and customer channels).

Each tap normalises its media once (decode, reorder, conceal, align) and pushes int16 PCM per channel into a
session opened from `pipelines.session.SessionManager`; protocol handlers never import the ASR pipeline.
"""
