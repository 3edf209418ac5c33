//! The motion tap: with motion detection on, a raw camera's pictures (YUYV, NV12) are reduced
//! to motion's luma grid on the device thread, where the picture is in memory before it is
//! encoded, and handed to the camera's watcher ([`crate::motion::Tap`]) with the frame's time.
//! Only pictures the watcher is due to take (a few a second) are read, each at a bounded number
//! of pixels ([`crate::motion::grid`]); the recorded MJPEG or H.264 is then never decoded to be
//! compared.

use super::device::{Buffer, Mode};
use super::encode::RawFormat;
use super::frames::{monotonic_now, wall_clock};
use crate::motion::{CELLS, Tap, grid};

/// A raw camera's tap: the watcher's [`Tap`] and the picture's layout.
pub(super) struct LumaTap {
    tap: Tap,
    format: RawFormat,
    width: usize,
    height: usize,
}

impl LumaTap {
    /// A tap for pictures of `mode`; `None` for a format that is not raw.
    pub(super) fn new(tap: Tap, mode: &Mode) -> Option<Self> {
        Some(Self {
            tap,
            format: RawFormat::of(mode.fourcc)?,
            width: usize::try_from(mode.width).ok()?,
            height: usize::try_from(mode.height).ok()?,
        })
    }

    /// Looks at a picture from the device: reduced and offered when the watcher is due one.
    pub(super) fn look(&mut self, buf: &Buffer) {
        let at_ms =
            wall_clock(buf.timestamp, monotonic_now(), jiff::Timestamp::now()).as_millisecond();
        if self.tap.due(at_ms) {
            let g = raw_grid(self.format, &buf.data, self.width, self.height);
            self.tap.offer(g, at_ms);
        }
    }
}

/// A `width`x`height` raw picture's luma reduced to the grid: YUYV's Y is every other byte,
/// NV12's the first plane; rows as far apart as the buffer's size over its lines (the driver's
/// bytesperline). `None` for a buffer too short for the picture.
pub(super) fn raw_grid(
    format: RawFormat,
    data: &[u8],
    width: usize,
    height: usize,
) -> Option<[u8; CELLS]> {
    let stride = format.stride(data.len(), width, height)?;
    let pitch = match format {
        RawFormat::Yuyv => 2,
        RawFormat::Nv12 => 1,
    };
    grid(data, width, height, stride, pitch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::GRID_W;

    /// A `w`x`h` picture of luma 40 with a block of 220 over columns `bx` and rows `by`, rows
    /// `stride` bytes apart, in `format`.
    fn picture(
        format: RawFormat,
        w: usize,
        h: usize,
        stride: usize,
        bx: std::ops::Range<usize>,
        by: std::ops::Range<usize>,
    ) -> Vec<u8> {
        let y = |x: usize, row: usize| {
            if bx.contains(&x) && by.contains(&row) {
                220
            } else {
                40
            }
        };
        match format {
            RawFormat::Yuyv => {
                // Chroma bytes bright too, so that reading them would show.
                let mut d = vec![255u8; stride * h];
                for row in 0..h {
                    for x in 0..w {
                        d[row * stride + 2 * x] = y(x, row);
                    }
                }
                d
            }
            RawFormat::Nv12 => {
                let mut d = vec![255u8; stride * (h + h.div_ceil(2))];
                for row in 0..h {
                    for x in 0..w {
                        d[row * stride + x] = y(x, row);
                    }
                }
                d
            }
        }
    }

    #[test]
    fn raw_pictures_reduce_to_the_grid() {
        for format in [RawFormat::Yuyv, RawFormat::Nv12] {
            let bytes: usize = if format == RawFormat::Yuyv { 2 } else { 1 };
            // Even and odd sizes, rows exactly as wide as the picture or padded.
            for (w, h, pad) in [(640, 360, 0), (640, 360, 64), (1281, 721, 6), (33, 19, 3)] {
                let stride = (w * bytes).next_multiple_of(2) + pad;
                // The block: the first quarter of the columns, rows from a half to the end.
                let (bx, by) = (0..w / 4, h / 2..h);
                let data = picture(format, w, h, stride, bx, by);
                let g = raw_grid(format, &data, w, h).unwrap_or_else(|| panic!("{w}x{h}"));
                let at = |cx: usize, cy: usize| g[cy * GRID_W + cx];
                // Cells wholly inside the block, and wholly outside it.
                assert_eq!(at(0, 17), 220, "{format:?} {w}x{h}+{pad}");
                assert_eq!(at(GRID_W / 4 - 2, 10), 220, "{format:?} {w}x{h}+{pad}");
                assert_eq!(at(0, 0), 40, "{format:?} {w}x{h}+{pad}");
                assert_eq!(at(GRID_W - 1, 17), 40, "{format:?} {w}x{h}+{pad}");
                assert_eq!(at(GRID_W / 2, 8), 40, "{format:?} {w}x{h}+{pad}");
                // A buffer one byte short of the picture gives no grid, and no panic.
                let short = &data[..data.len() - 1];
                let rows = if format == RawFormat::Yuyv {
                    h
                } else {
                    h + h.div_ceil(2)
                };
                // (The stride is the buffer's size over its lines: a short padded buffer is
                // still a whole picture of a smaller stride when that stride holds a row.)
                if (data.len() - 1) / rows < w * bytes {
                    assert_eq!(raw_grid(format, short, w, h), None);
                }
            }
            assert_eq!(raw_grid(format, &[], 640, 360), None);
            assert_eq!(raw_grid(format, &[0; 100], 640, 360), None);
            assert_eq!(raw_grid(format, &[0; 100], 0, 0), None);
            assert_eq!(raw_grid(format, &[0; 100], usize::MAX, usize::MAX), None);
            assert_eq!(raw_grid(format, &[0; 100], 1, usize::MAX), None);
        }
    }
}
