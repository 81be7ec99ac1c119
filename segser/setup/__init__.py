"""How a run is set up: config checks, training settings, components, threads, numerics, resume,
and what every entry point shares (one-line user errors)."""
