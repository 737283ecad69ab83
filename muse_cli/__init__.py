"""muse: generate and analyze music with real models, on Modal GPUs or in-process."""

__version__ = "0.1.0"
