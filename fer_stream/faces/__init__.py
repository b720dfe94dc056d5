"""Faces in frames: detection, tracking across frames, cropping for the classifier, and drawing results."""

from fer_stream.faces.annotate import FaceAnnotation, blur_faces, draw_annotations
from fer_stream.faces.crop import crop_face
from fer_stream.faces.detector import Detection, DetectorError, FaceDetector, create_detector
from fer_stream.faces.tracker import IouTracker, Track, TrackUpdate

__all__ = [
    "Detection",
    "DetectorError",
    "FaceAnnotation",
    "FaceDetector",
    "IouTracker",
    "Track",
    "TrackUpdate",
    "blur_faces",
    "create_detector",
    "crop_face",
    "draw_annotations",
]
