"""The daemon's HTTP face: the operator's console, /metrics, /healthz, /readyz and /status."""
