"""Synthetic dense conveyor scenes with exact ground truth (see scene.py); sprites.py draws them."""

from streamer.simulator.scene import ConveyorSimulator, Scene, default_radius, render_scene, render_support

__all__ = ["ConveyorSimulator", "Scene", "default_radius", "render_scene", "render_support"]
