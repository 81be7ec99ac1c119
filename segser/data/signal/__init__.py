"""Audio in, segments out: read and resample, cut into windows, stream long recordings."""
