"""vitlab: a terminal lab for Vision Transformer experiments."""

__version__ = "0.1.0"
