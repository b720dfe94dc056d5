"""Alert evidence: pictures of each alert event, made by the camera and kept by the supervisor for the console."""
