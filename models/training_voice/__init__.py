"""Training and cross-validation of the voice-emotion model (sklearn; not on the serving path)."""
