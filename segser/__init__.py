"""segser: segment-level speech emotion recognition with transfer learning."""

__version__ = "0.1.0"
