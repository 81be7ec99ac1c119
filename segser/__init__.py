"""segser: segment-level speech emotion recognition with transfer learning."""

__version__ = "0.1.0"

# Registers the config resolver `segser.training_mode`, so that Hydra's compose("train") works in a
# notebook after a bare `import segser`.
from segser.setup import training_settings as _training_settings  # noqa: F401
