#!/bin/sh
# Builds the kernel's virtual codec `vicodec` (a stateful V4L2 memory-to-memory FWHT encoder
# and decoder) and the `v4l2-mem2mem` framework it needs as out-of-tree modules for one Debian
# kernel, which builds neither (# CONFIG_VIDEO_VICODEC is not set, no V4L2_MEM2MEM_DEV).
# tests/vivid.rs loads them in its QEMU VM to test Eyrie's M2M encode path.
# Sources: Debian's linux-source-6.1 tarball (only the files these modules need are unpacked);
# build tree: linux-headers-<version>. Both are in tests/run's package list.
#   build_vicodec.sh <kernel version> <output dir>
# Leaves <output dir>/v4l2-mem2mem.ko and vicodec.ko; does nothing when both are there already.
set -eu
ver=$1
out=$2
[ -f "$out/vicodec.ko" ] && [ -f "$out/v4l2-mem2mem.ko" ] && exit 0
build=/lib/modules/$ver/build
[ -d "$build" ] || { echo "build_vicodec: no $build (install linux-headers-$ver)" >&2; exit 1; }
tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | head -1)
[ -n "$tarball" ] || { echo "build_vicodec: no /usr/src/linux-source-*.tar.xz (install linux-source-6.1)" >&2; exit 1; }
src=$out.src
rm -rf "$src"
mkdir -p "$src" "$out"
top=$(basename "$tarball" .tar.xz)
tar -xJf "$tarball" -C "$src" --strip-components=1 \
  "$top/drivers/media/test-drivers/vicodec" "$top/drivers/media/v4l2-core/v4l2-mem2mem.c"
mod=$src/mod
mkdir -p "$mod"
cp "$src"/drivers/media/test-drivers/vicodec/*.[ch] "$src/drivers/media/v4l2-core/v4l2-mem2mem.c" "$mod/"
# One directory, so modpost resolves vicodec's use of v4l2-mem2mem's symbols.
cat >"$mod/Makefile" <<'MK'
obj-m := v4l2-mem2mem.o vicodec.o
vicodec-objs := codec-fwht.o codec-v4l2-fwht.o vicodec-core.o
MK
make -s -C "$build" M="$mod" modules
cp "$mod/v4l2-mem2mem.ko" "$mod/vicodec.ko" "$out/"
rm -rf "$src"
