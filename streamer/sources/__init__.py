"""Camera and file sources, and their supervisor."""
