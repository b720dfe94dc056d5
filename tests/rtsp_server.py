"""A real RTSP server for tests: GStreamer's, serving mp4 files at rtsp://127.0.0.1:PORT/<name>.

Run with Debian's interpreter (``/usr/bin/python3``), which has python3-gi and
gir1.2-gst-rtsp-server-1.0; they do not load inside the project's venv::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 angry=/path/angry_man.mp4 calm=/path/calm_woman.mp4

Each mount is shared, so clients join the running stream like a real camera,
and loops: at the end of the file the media seeks back to the start, so the
stream outlives the clip. With ``RTSP_TEST_USER`` and ``RTSP_TEST_PASSWORD`` in
the environment, clients must authenticate (basic auth). Prints ``READY`` once
listening.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = "( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"


def loop_at_end(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
    """At end of stream seek the pipeline back to the start instead of ending the session."""
    element = media.get_element()
    payloader = element.get_by_name("pay0")

    def rewind() -> bool:
        element.get_parent().seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return False

    def on_event(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.get_event().type == Gst.EventType.EOS:
            GLib.idle_add(rewind)
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    payloader.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1", help="listen here (0.0.0.0 inside a container)")
    parser.add_argument("--no-loop", action="store_true", help="end the stream at the end of the file")
    parser.add_argument("mounts", nargs="+", metavar="NAME=FILE")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    user, password = os.environ.get("RTSP_TEST_USER"), os.environ.get("RTSP_TEST_PASSWORD")
    for spec in args.mounts:
        name, _, path = spec.partition("=")
        if not name or not os.path.isfile(path):
            parser.error(f"{spec}: expected NAME=FILE with an existing mp4 file")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(LAUNCH.format(path=path))
        factory.set_shared(True)
        if not args.no_loop:
            factory.connect("media-configure", loop_at_end)
        if user and password:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory(f"/{name}", factory)
    if user and password:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
