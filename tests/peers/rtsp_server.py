#!/usr/bin/python3
"""A tiny RTSP server for tests: GStreamer's gst-rtsp-server serving a moving test pattern.

Run with the system python (Debian's python3-gi):
    /usr/bin/python3 tests/peers/rtsp_server.py --port 8554 [--codec h264|jpeg] [--protocols tcp|udp]
        [--user U --password P]
Prints "READY rtsp://127.0.0.1:PORT/test" on stdout once it listens, then serves until killed.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

_ENCODERS = {
    # zerolatency + short GOP: a client that (re)connects decodes within a fraction of a second.
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96",
    "jpeg": "jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26",
}


def _launch(args: argparse.Namespace) -> str:
    # pattern=ball moves every frame, so the supervisor's frozen-frame check never fires on it.
    source = (
        f"videotestsrc is-live=true pattern={args.pattern} ! "
        f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 ! videoconvert ! "
    )
    return "( " + source + _ENCODERS[args.codec].format(fps=args.fps) + " )"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/test")
    parser.add_argument("--codec", choices=sorted(_ENCODERS), default="h264")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--pattern", default="ball")
    parser.add_argument("--protocols", choices=["any", "tcp", "udp"], default="any",
                        help="lower transports the server accepts (tcp-only / udp-only test the client's option)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch(args))
    factory.set_shared(False)  # a media per client: a failed client cannot leave a half-torn-down one (503)
    if args.protocols != "any":
        lower = GstRtsp.RTSPLowerTrans
        factory.set_protocols(lower.TCP if args.protocols == "tcp" else lower.UDP | lower.UDP_MCAST)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(args.user, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role(args.user, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{args.port}", flush=True)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
