"""Meaning-level compliance clause detectors (sentence embeddings + small trained heads) and their corpus."""
