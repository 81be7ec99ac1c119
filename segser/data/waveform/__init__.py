"""The raw-waveform feature path: each segment is its 16 kHz samples, for speech transformers."""
