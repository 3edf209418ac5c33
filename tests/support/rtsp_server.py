#!/usr/bin/python3
"""RTSP test server for Eyrie's tests: GStreamer gst-rtsp-server with /h264, /h265 and /mjpeg
mounts (live test pictures), and /NAME for each --clip NAME=FILE (an MJPEG .mov played once, in
real time, as RTP/JPEG) or --h264-clip NAME=FILE (the same, encoded to H.264 as it plays, with
the /h264 mount's encoder settings and --gop)."""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--gop", type=int, default=15)
    ap.add_argument("--pattern", default="ball",
                    help="videotestsrc pattern; 'snow' is noise, for a high bitrate")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth", choices=["digest", "basic"], default="digest",
                    help="auth method with --user (GI exposes the methods as an enum, so one at a time)")
    ap.add_argument("--clip", action="append", default=[], metavar="NAME=FILE",
                    help="serve FILE (MJPEG in MOV, baseline with standard Huffman tables) at /NAME")
    ap.add_argument("--h264-clip", action="append", default=[], metavar="NAME=FILE",
                    help="serve FILE (as --clip) encoded to H.264 at /NAME, a key frame every --gop")
    a = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(a.host)
    server.set_service(str(a.port))
    src = (f"videotestsrc is-live=true pattern={a.pattern} ! video/x-raw,width={a.width},height={a.height},"
           f"framerate={a.fps}/1,format=I420 ! ")
    enc = {
        "h264": f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={a.gop} bframes=0 "
                f"! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
        "h265": f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={a.gop} "
                f"option-string=bframes=0 ! rtph265pay name=pay0 pt=96 config-interval=-1",
        "mjpeg": "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26",
    }
    mounts = server.get_mount_points()
    for name, e in enc.items():
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(f"( {src}{e} )")
        f.set_shared(True)
        if a.user:
            f.add_role_from_structure(Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
        mounts.add_factory(f"/{name}", f)
    clips = [(c, "jpegparse ! rtpjpegpay name=pay0 pt=26") for c in a.clip]
    clips += [(c, f"jpegdec ! videoconvert ! video/x-raw,format=I420 ! {enc['h264']}") for c in a.h264_clip]
    for clip, out in clips:
        name, path = clip.split("=", 1)
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(f"( filesrc location={path} ! qtdemux ! {out} )")
        f.set_shared(True)
        mounts.add_factory(f"/{name}", f)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        if a.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ""), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(a.user, a.password or "", token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr)
        sys.exit(1)
    for s in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, s, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
