#!/bin/busybox sh
# /init of the initramfs tests/vivid.rs boots under QEMU: loads the vivid virtual camera, runs
# eyrie, and prints what its API says between "=== NAME" and "=== END" lines on the console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# One vivid instance with only a video capture node: /dev/video0.
modprobe vivid n_devs=1 node_types=0x1 || echo "=== FAILED modprobe vivid"
ip link set lo up
ls -l /dev/video* 2>&1
echo "=== TRIAL"
/eyrie devices --capture 10 --source 'v4l2:///dev/video0?width=640&height=360&fps=30' 2>&1
echo "=== END"
/eyrie run --data /tmp/data --listen 127.0.0.1:8080 --config /eyrie.toml >/tmp/eyrie.log 2>&1 &
# As the admin the config makes (HTTP Basic in the URL, which busybox wget sends).
api=http://admin:eyrie-test-password@127.0.0.1:8080/api
for i in $(seq 1 50); do
  wget -qO /dev/null $api/health 2>/dev/null && break
  sleep 0.2
done
show() { echo "=== $1"; wget -qO- "$2"; echo; echo "=== END"; }
show DEVICES $api/system/devices
wget -qO /dev/null --header 'content-type: application/json' \
  --post-data '{"id": "vivid", "name": "vivid", "source": "v4l2:///dev/video0"}' $api/cameras
sleep 3
show CAMERA $api/cameras/vivid
echo "=== LOG"; cat /tmp/eyrie.log; echo "=== END"
poweroff -f
