#!/usr/bin/python3
"""Ingest benchmark: N simultaneous RTSP streams recorded by Eyrie, against the named baseline
of N `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60` processes (how
CartaNVR and Frigate record), from the same GStreamer RTSP server, in the same run.

Prints CPU-seconds per stream-minute for both and their ratio (target: Eyrie <= 0.2x ffmpeg),
Eyrie's peak RSS (target with 8 streams: < 32 MiB), and frames lost.

Run: /usr/bin/python3 benches/ingest.py [--streams 1,4,8] [--seconds 60] [--width 1280 --height 720]
Results: docs/benchmarks.md.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import bench_node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
FPS = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, all threads


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def http(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=body and json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **bench_node.AUTH})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def wait_http(url, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            return http("GET", url)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def run_eyrie(n, rtsp_url, seconds, warmup, work):
    port = free_port()
    cfg = os.path.join(work, "eyrie.toml")
    with open(cfg, "w") as f:
        f.write("[recording]\nsegment_seconds = 60\n[storage]\nmin_free = 0\n" + bench_node.CONFIG)
    p = subprocess.Popen([os.path.join(ROOT, "target/release/eyrie"), "run", "--data",
                          os.path.join(work, "data"), "--listen", f"127.0.0.1:{port}",
                          "--config", cfg], stderr=open(os.path.join(work, "eyrie.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/api/health")
        for i in range(n):
            http("POST", base + "/api/cameras", {"id": f"cam{i}", "name": f"cam{i}", "source": rtsp_url})
        time.sleep(warmup)
        h0 = http("GET", base + "/api/health")
        c0 = cpu_seconds(p.pid)
        time.sleep(seconds)
        c1 = cpu_seconds(p.pid)
        h1 = http("GET", base + "/api/health")
        frames = sum(c["frames"] for c in h1["cameras"]) - sum(c["frames"] for c in h0["cameras"])
        dropped = sum(c["dropped_frames"] for c in h1["cameras"])
        states = sorted({c["state"] for c in h1["cameras"]})
        if states != ["recording"]:
            with open(os.path.join(work, "eyrie.log")) as log:
                warnings = [l.rstrip() for l in log if " WARN " in l or " ERROR " in l]
            print("\n".join(["eyrie warnings:"] + warnings[-10:]), file=sys.stderr)
        return {"cpu": c1 - c0, "rss_kib": status_kib(p.pid, "VmHWM"),
                "rss_now_kib": status_kib(p.pid, "VmRSS"), "frames": frames,
                "dropped": dropped, "states": states}
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def run_ffmpeg(n, rtsp_url, seconds, warmup, work):
    procs = []
    for i in range(n):
        out = os.path.join(work, f"ff{i}")
        os.makedirs(out)
        procs.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", rtsp_url,
             "-c", "copy", "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
             os.path.join(out, "out%03d.mp4")], stderr=subprocess.DEVNULL))
    try:
        time.sleep(warmup)
        c0 = sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(seconds)
        c1 = sum(cpu_seconds(p.pid) for p in procs)
        rss = sum(status_kib(p.pid, "VmHWM") for p in procs)
        alive = sum(p.poll() is None for p in procs)
        return {"cpu": c1 - c0, "rss_kib": rss, "alive": alive}
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    a = ap.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed (tests/run installs it)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    port = free_port()
    server = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests/support/rtsp_server.py"),
                               "--port", str(port), "--width", str(a.width), "--height", str(a.height),
                               "--fps", str(FPS), "--gop", str(FPS)], stdout=subprocess.PIPE)
    assert server.stdout.readline().startswith(b"READY")
    url = f"rtsp://127.0.0.1:{port}/h264"
    print(f"ingest benchmark: {a.width}x{a.height} H.264 at {FPS} fps from a GStreamer RTSP server, "
          f"{a.seconds} s per measurement, {os.cpu_count()} cores")
    print(f"{'streams':>7} {'eyrie cpu-s/stream-min':>23} {'ffmpeg cpu-s/stream-min':>24} {'eyrie/ffmpeg':>12} "
          f"{'eyrie peak RSS':>14} {'eyrie RSS now':>13} {'ffmpeg RSS sum':>14} {'frames got/expected':>20} {'dropped':>7} {'server cpu %':>12}")
    try:
        for n in [int(x) for x in a.streams.split(",")]:
            with tempfile.TemporaryDirectory() as work:
                s0 = cpu_seconds(server.pid)
                e = run_eyrie(n, url, a.seconds, a.warmup, work)
                s1 = cpu_seconds(server.pid)
            with tempfile.TemporaryDirectory() as work:
                f = run_ffmpeg(n, url, a.seconds, a.warmup, work)
            stream_min = n * a.seconds / 60
            e_rate, f_rate = e["cpu"] / stream_min, f["cpu"] / stream_min
            expected = n * a.seconds * FPS
            print(f"{n:>7} {e_rate:>23.3f} {f_rate:>24.3f} {e_rate / f_rate:>12.2f} "
                  f"{e['rss_kib'] / 1024:>11.1f} MiB {e['rss_now_kib'] / 1024:>10.1f} MiB {f['rss_kib'] / 1024:>10.1f} MiB "
                  f"{e['frames']:>9}/{expected:<10} {e['dropped']:>7} {100 * (s1 - s0) / (a.seconds + a.warmup):>12.1f}"
                  + ("" if e["states"] == ["recording"] else f"  states: {e['states']}")
                  + ("" if f["alive"] == n else f"  ffmpeg alive: {f['alive']}/{n}"))
            sys.stdout.flush()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


if __name__ == "__main__":
    main()
