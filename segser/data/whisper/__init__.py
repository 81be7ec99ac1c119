"""The Whisper feature path: Whisper's own log-mel of raw 16 kHz segments."""
