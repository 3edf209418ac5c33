#!/usr/bin/python3
"""Federation benchmark: how fast `GET /api/cameras` answers on a node that reads 20 peers, of
which 2 are dead (nothing listens) and 1 is slow (accepts, then answers nothing for 30 s),
against the named baseline of the same call on the same node with 0 peers, in the same run.
Target: p99 < 20 ms with 20 peers. Also: how long a camera added on a peer takes to show up
in the node's aggregated list (with the default 10 s poll interval).

The 17 live peers are real `eyrie` processes, each with 2 cameras (disabled, so they do not
record and the machine stays quiet); the node itself runs the demo camera.

Run: /usr/bin/python3 benches/federation.py [--requests 2000] [--appear 17]
Results: docs/benchmarks.md.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench_node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/eyrie")
LIVE, DEAD, SLOW = 17, 2, 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection to a node."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, method, path, body=None, headers=None):
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(bench_node.AUTH)
        h.update(headers or {})
        try:
            self.conn.request(method, path, body=body and json.dumps(body), headers=h)
            r = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closes connections idle for 10 s: open a new one.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.conn.request(method, path, body=body and json.dumps(body), headers=h)
            r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data) if data else None


def start_node(work, name, extra=()):
    port = free_port()
    data = os.path.join(work, name)
    os.makedirs(data)
    cfg = os.path.join(data, "eyrie.toml")
    with open(cfg, "w") as f:
        f.write(bench_node.CONFIG)
    p = subprocess.Popen([BIN, "run", "--data", data, "--listen", f"127.0.0.1:{port}",
                          "--config", cfg, *extra],
                         stderr=open(os.path.join(data, "log"), "w"))
    end = time.time() + 30
    while True:
        try:
            Client(port).call("GET", "/api/health")
            return p, port
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.1)


def slow_peer():
    """Accepts connections and never answers (until the benchmark ends)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def measure(client, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.call("GET", "/api/cameras")
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))], times[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--appear", type=int, default=17, help="cameras added on a peer to time")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    procs = []
    with tempfile.TemporaryDirectory() as work:
        try:
            node, port = start_node(work, "node", ["--demo"])
            procs.append(node)
            me = Client(port)
            base = measure(me, a.requests)

            peers = []
            for i in range(LIVE):
                p, pp = start_node(work, f"peer{i}")
                procs.append(p)
                c = Client(pp)
                for j in range(2):
                    c.call("POST", "/api/cameras", {"id": f"cam{j}", "name": f"Peer {i} camera {j}",
                                                   "source": "rtsp://127.0.0.1:9/none", "enabled": False})
                key = c.call("POST", "/api/federation/keys", {"name": "bench"})["key"]
                peers.append((f"http://127.0.0.1:{pp}", key, c))
            for i in range(DEAD):
                peers.append((f"http://127.0.0.1:{free_port()}", "0" * 64, None))
            srv, sp = slow_peer()
            peers.append((f"http://127.0.0.1:{sp}", "0" * 64, None))
            for i, (url, key, _) in enumerate(peers):
                me.call("POST", "/api/system/nodes", {"label": f"peer {i}", "url": url, "key": key})
            end = time.time() + 60
            while len(me.call("GET", "/api/cameras")) < 1 + 2 * LIVE:
                if time.time() > end:
                    sys.exit("the live peers' cameras did not all show up within 60 s")
                time.sleep(0.2)
            time.sleep(5)  # let the dead and slow peers fail a few polls
            fed = measure(me, a.requests)

            # A camera added on a peer: time until the node lists it.
            waits = []
            for k in range(a.appear):
                _, _, c = peers[k % LIVE]
                cam = f"new{k}"
                c.call("POST", "/api/cameras", {"id": cam, "name": cam,
                                                "source": "rtsp://127.0.0.1:9/none", "enabled": False})
                t = time.time()
                while not any(x["id"].endswith("-" + cam) for x in me.call("GET", "/api/cameras")):
                    time.sleep(0.05)
                waits.append(time.time() - t)
            srv.close()
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    print(f"GET /api/cameras, {a.requests} sequential requests on one keep-alive connection, "
          f"{os.cpu_count()} cores")
    print(f"{'peers':>28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99 ratio':>10}")
    print(f"{'0 (baseline)':>28} {base[0]:>8.2f} {base[1]:>8.2f} {base[2]:>8.2f} {1:>10.2f}")
    print(f"{f'{LIVE + DEAD + SLOW} ({DEAD} dead, {SLOW} slow)':>28} {fed[0]:>8.2f} {fed[1]:>8.2f} "
          f"{fed[2]:>8.2f} {fed[1] / base[1]:>10.2f}")
    print(f"a camera added on a peer shows up after {statistics.median(waits):.1f} s "
          f"(median of {len(waits)}; min {min(waits):.1f} s, max {max(waits):.1f} s; "
          f"poll interval 10 s)")


if __name__ == "__main__":
    main()
