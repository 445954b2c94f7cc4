"""The stream processor: frame loop, publishing, control and metrics."""
