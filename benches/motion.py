#!/usr/bin/python3
"""Motion benchmark: the CPU that Eyrie's own motion detection adds to recording a camera. For
each codec asked (MJPEG, H.264), two Eyrie processes run side by side, both recording the same
RTSP stream (the GStreamer RTSP server's /mjpeg or /h264 mount: a moving ball, so events start
and end); one has motion detection on for its camera, the other (the baseline) only records.
The codecs run one after the other in the same run, each pair side by side.

Prints, per codec, CPU-seconds per camera-minute of both, their ratio (target: motion costs at
most as much again as recording: ratio <= 2), the pictures the detector compared (for H.264 the
key frames, one per --gop frames) and dropped, peak RSS.

Run: /usr/bin/python3 benches/motion.py [--seconds 60] [--width 1280 --height 720] [--fps 15]
     [--gop 15] [--codec mjpeg --codec h264]
Results: docs/benchmarks.md.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import bench_node
from ingest import ROOT, cpu_seconds, free_port, http, status_kib, wait_http


def start_eyrie(work, url, motion):
    port = free_port()
    cfg = os.path.join(work, "eyrie.toml")
    with open(cfg, "w") as f:
        f.write("[recording]\nsegment_seconds = 60\n[storage]\nmin_free = 0\n" + bench_node.CONFIG)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    p = subprocess.Popen([os.path.join(target, "release/eyrie"), "run", "--data",
                          os.path.join(work, "data"), "--listen", f"127.0.0.1:{port}",
                          "--config", cfg], stderr=open(os.path.join(work, "eyrie.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/api/health")
    http("POST", base + "/api/cameras",
         {"id": "cam", "name": "cam", "source": url, "motion": {"enabled": motion}})
    return p, base


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--gop", type=int, default=15, help="H.264 frames per key frame")
    ap.add_argument("--codec", action="append", choices=["mjpeg", "h264"],
                    help="codecs to measure, one after the other (default: both)")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    port = free_port()
    server = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests/support/rtsp_server.py"),
                               "--port", str(port), "--width", str(a.width), "--height", str(a.height),
                               "--fps", str(a.fps), "--gop", str(a.gop)], stdout=subprocess.PIPE)
    assert server.stdout.readline().startswith(b"READY")
    try:
        for codec in a.codec or ["mjpeg", "h264"]:
            measure(a, f"rtsp://127.0.0.1:{port}/{codec}", codec)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def measure(a, url, codec):
    gop = f", a key frame every {a.gop} frames" if codec == "h264" else ""
    print(f"\nmotion benchmark: {a.width}x{a.height} {codec.upper()} at {a.fps} fps{gop} from a GStreamer "
          f"RTSP server, {a.seconds} s, two Eyries side by side, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as w1, tempfile.TemporaryDirectory() as w2:
        (pm, bm), (pr, br) = start_eyrie(w1, url, True), start_eyrie(w2, url, False)
        try:
            time.sleep(a.warmup)
            h0 = http("GET", bm + "/api/health")["cameras"][0].get("motion", {})
            m0, r0 = cpu_seconds(pm.pid), cpu_seconds(pr.pid)
            time.sleep(a.seconds)
            m1, r1 = cpu_seconds(pm.pid), cpu_seconds(pr.pid)
            hm = http("GET", bm + "/api/health")["cameras"][0]
            hr = http("GET", br + "/api/health")["cameras"][0]
            motion = hm.get("motion", {})
            per_min = 60 / a.seconds
            cm, cr = (m1 - m0) * per_min, (r1 - r0) * per_min
            print(f"{'':>22} {'cpu-s/camera-min':>17} {'peak RSS':>10} {'frames':>7} {'state':>10}")
            print(f"{'recording alone':>22} {cr:>17.3f} {status_kib(pr.pid, 'VmHWM') / 1024:>8.1f} M "
                  f"{hr['frames']:>7} {hr['state']:>10}")
            print(f"{'recording + motion':>22} {cm:>17.3f} {status_kib(pm.pid, 'VmHWM') / 1024:>8.1f} M "
                  f"{hm['frames']:>7} {hm['state']:>10}")
            checked = motion.get("checked", 0) - h0.get("checked", 0)
            print(f"ratio (motion / alone): {cm / cr if cr else float('nan'):.2f}; pictures compared "
                  f"{checked} ({checked / a.seconds:.1f}/s), dropped {motion.get('dropped')}, "
                  f"unreadable {motion.get('unreadable')}")
            # From the API (the last 24 hours by default): events of the motion node's camera.
            events = http("GET", bm + "/api/recordings/events?camera=cam")["events"]
            print(f"motion events: {len(events)}, of them ongoing "
                  f"{sum(e.get('end_ms') is None for e in events)}")
        finally:
            stop(pm)
            stop(pr)


if __name__ == "__main__":
    sys.exit(main())
