#!/usr/bin/env bash
# Makes assets/demo.mp4, the clip the --demo camera loops: 10 s of ffmpeg's testsrc2 pattern,
# 640x360 at 15 fps, H.264 main profile, a key frame every second (15 frames), no B-frames
# (Eyrie records streams without B-frames), progressive MP4 with the moov first. Built into the
# binary, so it is kept small. Rerun only to change it; commit the result.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -v error -y -f lavfi -i testsrc2=size=640x360:rate=15:duration=10 \
  -c:v libx264 -profile:v main -pix_fmt yuv420p -preset veryslow -crf 30 \
  -g 15 -keyint_min 15 -sc_threshold 0 -bf 0 -an -map_metadata -1 \
  -movflags +faststart demo.mp4
ls -l demo.mp4
