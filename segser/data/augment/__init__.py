"""Training-data augmentation: waveform perturbations, SpecAugment masks, cached passes."""
