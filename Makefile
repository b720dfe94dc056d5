# Two commands for a fresh machine (Debian + Python 3.11):
#   make demo   set everything up and run the daemon on the built-in demo
#   make test   set everything up, lint (ruff), type-check (mypy) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the daemon and the tests use: Redis (alerts), GStreamer's RTSP
# server (a real camera stream on loopback), Prometheus (dashboard check), docker-compose (checks the
# compose stack's file), Chromium (the console's browser test). The container test builds and runs
# the image with no container registry: mmdebstrap makes its Debian base from Debian's packages,
# podman and buildah build and run it, podman-compose brings up the compose stack; slirp4netns lets
# a container reach the host's loopback (a Redis there), netavark and aardvark-dns give the stack's
# network its service names, uidmap and fuse-overlayfs are what podman needs without root.
DEB_PACKAGES := redis-server prometheus docker-compose chromium python3-gi gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools \
	podman buildah mmdebstrap podman-compose slirp4netns netavark aardvark-dns uidmap fuse-overlayfs
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup system-packages clean

demo: setup
	$(BIN)/fer-stream demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,test]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info
