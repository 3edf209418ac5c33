#!/bin/busybox sh
# /init of the initramfs tests/vivid.rs boots under QEMU: loads the vivid virtual camera, runs
# eyrie, and keeps what its API says (and recorded files) in /tmp/out, which goes to the host as
# a tar stream over a virtio serial port (the console is too slow for video). Progress and
# "=== FAILED" lines go to the console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# Four vivid instances with only a video capture node each: /dev/video0 to 3.
modprobe vivid n_devs=4 node_types=0x1,0x1,0x1,0x1 || echo "=== FAILED modprobe vivid"
modprobe virtio_pci && modprobe virtio_console || echo "=== FAILED modprobe virtio_console"
ip link set lo up
mkdir -p /tmp/out
ls -l /dev/video* /dev/vport* 2>&1
/eyrie devices --capture 10 --source 'v4l2:///dev/video0?width=640&height=360&fps=30' \
  >/tmp/out/TRIAL 2>&1
# The M2M encode path against the kernel's virtual FWHT codec vicodec (built out of tree by
# tests/support/build_vicodec.sh): its encoder, decoder and stateless decoder nodes follow
# vivid's. Single-planar queues first, then multi-planar ones; vivid's pictures go in, FWHT
# frames come out (the host checks them). vicodec stays loaded for the rest: Eyrie must not
# take it for an H.264 encoder.
insmod /m2m/v4l2-mem2mem.ko || echo "=== FAILED insmod v4l2-mem2mem"
m2m() {
  mkdir -p "/tmp/out/$1"
  /eyrie m2m-trial --source "$2" --codec FWHT --pictures $3 --out "/tmp/out/$1" $4 \
    >"/tmp/out/$1.json" 2>"/tmp/out/$1.log"
}
insmod /m2m/vicodec.ko multiplanar=0 || echo "=== FAILED insmod vicodec"
m2m m2m-single 'v4l2:///dev/video0?width=640&height=360&fps=10&format=YUYV' 12
rmmod vicodec || echo "=== FAILED rmmod vicodec"
insmod /m2m/vicodec.ko multiplanar=1 || echo "=== FAILED insmod vicodec multiplanar"
m2m m2m-multi 'v4l2:///dev/video1?width=640&height=360&fps=10&format=NV12' 12
# Thirty pictures offered at once, their frames taken only after: more than the encoder's
# buffers and the frame channel hold.
m2m m2m-burst 'v4l2:///dev/video0?width=640&height=360&fps=10&format=YUYV' 30 --burst
ls -l /dev/video* 2>&1
/eyrie run --data /tmp/data --listen 127.0.0.1:8080 --config /eyrie.toml >/tmp/eyrie.log 2>&1 &
# As the admin the config makes (HTTP Basic in the URL, which busybox wget sends).
api=http://admin:eyrie-test-password@127.0.0.1:8080/api
for i in $(seq 1 50); do
  wget -qO /dev/null $api/health 2>/dev/null && break
  sleep 0.2
done
show() { echo "getting $1"; wget -qO "/tmp/out/$1" "$2" || echo "=== FAILED getting $2"; }
add() {
  wget -qO /dev/null --header 'content-type: application/json' \
    --post-data "{\"id\": \"$1\", \"name\": \"$1\", \"source\": \"$2\"$3}" $api/cameras \
    || echo "=== FAILED adding camera $1"
}
show DEVICES $api/system/devices
# Raw pictures encoded to MJPEG in software: YUYV kept to 4 and NV12 to 2 pictures a second,
# and a format Eyrie does not encode (8-bit grey), which must be an error, not a crash.
# vivid streams 10 fps (its pictures cost CPU in this VM without KVM). The YUYV camera's
# pattern moves (vivid's "Horizontal Movement" control, set with Debian's v4l2-ctl) and it has
# motion detection on: its raw pictures go to the motion tap, and a motion event must come.
/v4l2-ctl -d /dev/video0 -c horizontal_movement=6 || echo "=== FAILED v4l2-ctl movement"
add yuyv 'v4l2:///dev/video0?width=640&height=360&fps=10&format=YUYV&encode_fps=4&quality=50' \
  ', "motion": {"enabled": true}'
add nv12 'v4l2:///dev/video1?width=640&height=360&fps=10&format=NV12&encode_fps=2&quality=50'
add grey 'v4l2:///dev/video2?width=640&height=360&format=GREY'
# Forced to an M2M H.264 encoder, of which this machine has none (vicodec makes FWHT): an error.
add forced 'v4l2:///dev/video3?width=640&height=360&fps=10&format=YUYV&encoder=m2m'
# Until both have a closed segment (segments are 10 s).
closed() {
  wget -qO- "$api/recordings?camera=$1" | grep -o '"id":[0-9]*,[^}]*"state":"closed"' |
    head -1 | sed 's/"id":\([0-9]*\),.*/\1/'
}
for i in $(seq 1 120); do
  [ -n "$(closed yuyv)" ] && [ -n "$(closed nv12)" ] && break
  sleep 0.5
done
show HEALTH $api/health
show CAMERA_GREY $api/cameras/grey
show CAMERA_FORCED $api/cameras/forced
for cam in yuyv nv12; do
  show "segment-$cam.mp4" "$api/segments/$(closed $cam).mp4"
done
# The picture recorded a second into the first segment, and the live stream until a few parts
# have come (about 16 KB each) or 30 s have passed: under load this emulated VM encodes a
# picture only every few seconds.
at=$(wget -qO- "$api/recordings?camera=yuyv" | grep -o '"start_ms":[0-9]*' | head -1 | cut -d: -f2)
show frame.jpg "$api/recordings/yuyv/frame.jpg?at=$((at + 1000))"
timeout 30 wget -qO- $api/cameras/yuyv/live | head -c 60000 >/tmp/out/live
show EVENTS "$api/recordings/events?camera=yuyv"
cp /tmp/eyrie.log /tmp/out/LOG
tar -cf - -C /tmp/out . >/dev/vport0p1 || echo "=== FAILED sending the results"
echo "=== SENT"
poweroff -f
