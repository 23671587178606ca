"""Meeting and call minutes: summary, decisions, action items, chapters, speaker statistics (see types.py)."""
