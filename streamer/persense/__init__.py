"""The PerSense algorithm: pure steps over numpy arrays, and the pipeline that chains them."""

from streamer.persense.idm import idm
from streamer.persense.pipeline import PerSense, Support
from streamer.persense.ppsm import ppsm

__all__ = ["idm", "ppsm", "PerSense", "Support"]
