"""The log-mel feature path: VGGish/YAMNet frames and 96x64 patches of segments."""
