"""Core commands: serve, transcribe, stream, models."""
