"""The Qt window: the only package in livesound that imports Qt.

``import livesound`` never reaches this package; the CLI imports it only for the windowed live mode, so
headless runs, tests and servers need no Qt. Everything here runs in the GUI thread (see ``window``).
"""

from livesound.app.window import LiveWindow, run_window

__all__ = ["LiveWindow", "run_window"]
