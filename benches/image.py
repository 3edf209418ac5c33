#!/usr/bin/python3
"""Budgets of the appliance image (docs/image.md, docs/benchmarks.md).

Builds the qemu-aarch64 image with image/build (or takes --image), then:
  - size: apparent and allocated bytes of the image and of its root, against the 128 MiB
    budget;
  - boot: boots a fresh copy of the image (first boot, so including growing the data partition)
    under qemu-system-aarch64 -M virt with TCG, --boots times; time from starting QEMU to the
    kernel running the initramfs (baseline: Debian's kernel alone) and to /api/health
    answering, against the 60 s budget;
  - memory: after --idle seconds with no camera, the whole system's memory in use
    (MemTotal - MemAvailable from the guest's /proc/meminfo, as /api/health reports it) and
    Eyrie's RSS.
Network: the guest's user network reaches nothing but the forwarded port (restrict=on).
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024
AUTH = "Basic " + base64.b64encode(b"admin:eyrie-test-password").decode()  # board/qemu-aarch64/eyrie.toml


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/health", headers={"Authorization": AUTH})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)
    except OSError:
        return None


def part1_offset(img):
    t = json.loads(subprocess.check_output(["sfdisk", "--json", img]))
    return t["partitiontable"]["partitions"][0]["start"] * 512


def boot(work, img, idle):
    disk = os.path.join(work, "disk.img")
    shutil.copyfile(img, disk)
    os.truncate(disk, 1024 * MIB)
    console = os.path.join(work, "console.log")
    if os.path.exists(console):
        os.remove(console)
    port = free_port()
    qemu = subprocess.Popen(
        ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "512", "-smp", "2",
         "-accel", "tcg", "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
         "-serial", f"file:{console}",
         "-kernel", os.path.join(work, "vmlinuz"), "-initrd", os.path.join(work, "initrd.img"),
         "-append", "console=ttyAMA0 panic=-1",
         "-drive", f"file={disk},if=virtio,format=raw",
         "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:8080",
         "-device", "virtio-net-pci,netdev=n0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    start = time.monotonic()
    t_init = None
    try:
        while True:
            now = time.monotonic() - start
            if t_init is None and os.path.exists(console):
                with open(console, errors="replace") as f:
                    if "Run /init as init process" in f.read():
                        t_init = now
            h = health(port)
            if h is not None:
                t_health = now
                break
            if qemu.poll() is not None or now > 300:
                raise SystemExit(f"no /api/health; console in {console}")
            time.sleep(0.1)
        time.sleep(idle)
        h = health(port)
        return t_init, t_health, h
    finally:
        qemu.kill()
        qemu.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", help="an eyrie-qemu-aarch64.img already built")
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as work:
        img = a.image
        if img is None:
            out = os.path.join(work, "out")
            subprocess.check_call([os.path.join(REPO, "image/build"), "qemu-aarch64"],
                                  env=dict(os.environ, EYRIE_IMAGE_OUT=out))
            img = os.path.join(out, "eyrie-qemu-aarch64.img")
        root = img.replace(".img", "-root.squashfs")
        st = os.stat(img)
        print(f"image: {st.st_size / MIB:.1f} MiB apparent, {st.st_blocks * 512 / MIB:.1f} MiB allocated"
              f" ({st.st_size / (128 * MIB):.2f} of the 128 MiB budget)")
        if os.path.exists(root):
            print(f"root squashfs: {os.stat(root).st_size / MIB:.1f} MiB")
        off = part1_offset(img)
        for f in ("vmlinuz", "initrd.img"):
            subprocess.check_call(["mcopy", "-i", f"{img}@@{off}", f"::{f}", os.path.join(work, f)],
                                  env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
            print(f"{f}: {os.stat(os.path.join(work, f)).st_size / MIB:.1f} MiB")

        print(f"\n{'boot':>4} {'kernel to /init (s)':>20} {'to /api/health (s)':>19} {'÷ kernel':>9}"
              f" {'of 60 s budget':>15} {'system in use (MiB)':>20} {'Eyrie RSS (MiB)':>16}")
        for n in range(1, a.boots + 1):
            t_init, t_health, h = boot(work, img, a.idle)
            used = (h["memory"]["total_bytes"] - h["memory"]["available_bytes"]) / MIB
            rss = h["memory"]["process_rss_bytes"] / MIB
            ratio = t_health / t_init if t_init else float("nan")
            print(f"{n:>4} {t_init or float('nan'):>20.1f} {t_health:>19.1f} {ratio:>9.2f}"
                  f" {t_health / 60:>15.2f} {used:>20.1f} {rss:>16.1f}")
        print(f"\nguest: 2 vCPU cortex-a72 (TCG), {h['memory']['total_bytes'] / MIB:.0f} MiB visible;"
              f" idle {a.idle:.0f} s after /api/health answered")


if __name__ == "__main__":
    main()
