"""Cameras: reading frames from RTSP, USB or files, and reconnecting when they fail."""

from fer_stream.camera.source import Frame, FrameSource, SourceState

__all__ = ["Frame", "FrameSource", "SourceState"]
