"""Offline runs of the camera pipeline over video files: ``replay`` and ``calibrate``."""
