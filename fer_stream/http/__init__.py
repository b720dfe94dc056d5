"""The daemon's HTTP face: /metrics, /healthz, /readyz, /status and the live view."""
