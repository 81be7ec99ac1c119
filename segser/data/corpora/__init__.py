"""Corpus readers: a corpus on disk in, the one clip table (clips.py) out."""
