"""fer-stream: multi-camera facial-expression stream processor."""

__version__ = "0.1.0"
