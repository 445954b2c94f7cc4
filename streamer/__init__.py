"""PerSense Stream: one-shot dense instance segmentation for industrial camera streams."""

__version__ = "0.1.0"
