"""What a run writes (metrics, predictions, plots) and what reads runs and sweeps back."""
