//! What encoding raw pictures through a V4L2 memory-to-memory encoder needs that is not the
//! kernel (that is v4l2_m2m.rs): which of the encoder's OUTPUT buffers are free (a fixed set:
//! a picture that finds none is dropped and counted, nothing grows), and copying a picture
//! into a buffer whose line stride or plane height differs from the camera's.

use super::encode::RawFormat;

/// The OUTPUT (raw picture) buffers of an encoder that are ours to fill: all of them at the
/// start, one fewer for each queued picture until the driver hands it back.
#[derive(Debug)]
pub struct Slots {
    free: Vec<u32>,
    count: u32,
}

impl Slots {
    pub fn new(count: u32) -> Self {
        Self {
            free: (0..count).rev().collect(),
            count,
        }
    }

    /// A free buffer, if any.
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// A buffer the driver is done with (an index it never had, or one already free, is
    /// ignored: the set never grows beyond its buffers).
    pub fn give(&mut self, index: u32) {
        if index < self.count && !self.free.contains(&index) {
            self.free.push(index);
        }
    }

    pub fn free(&self) -> usize {
        self.free.len()
    }
}

/// How a raw picture lies in memory: bytes per line, and lines per plane (the chroma plane of
/// NV12 starts after `plane_lines` luma lines; a driver may pad the height).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub stride: usize,
    pub plane_lines: usize,
}

/// Copies a `width`x`height` picture from `src` (laid out as `from`) into `dst` (laid out as
/// `to`), line by line when the layouts differ; the bytes of `dst` used.
pub fn copy_picture(
    format: RawFormat,
    width: usize,
    height: usize,
    src: &[u8],
    from: Layout,
    dst: &mut [u8],
    to: Layout,
) -> Result<usize, String> {
    let (row, planes) = match format {
        RawFormat::Yuyv => (width * 2, 1),
        RawFormat::Nv12 => (width.next_multiple_of(2), 2),
    };
    let need = |l: Layout| match format {
        RawFormat::Yuyv => l.stride * height,
        RawFormat::Nv12 => l.stride * (l.plane_lines + height.div_ceil(2)),
    };
    if from.stride < row || to.stride < row || src.len() < need(from) || dst.len() < need(to) {
        return Err(format!(
            "a {}x{height} {format:?} picture does not fit: {} bytes in (stride {}), {} out \
             (stride {})",
            width,
            src.len(),
            from.stride,
            dst.len(),
            to.stride
        ));
    }
    if from == to {
        let n = need(from);
        dst[..n].copy_from_slice(&src[..n]);
        return Ok(n);
    }
    for plane in 0..planes {
        let lines = if plane == 0 {
            height
        } else {
            height.div_ceil(2)
        };
        let (s0, d0) = (
            plane * from.plane_lines * from.stride,
            plane * to.plane_lines * to.stride,
        );
        for l in 0..lines {
            let s = s0 + l * from.stride;
            let d = d0 + l * to.stride;
            dst[d..d + row].copy_from_slice(&src[s..s + row]);
        }
    }
    Ok(need(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_come_back() {
        let mut s = Slots::new(2);
        let a = s.take().unwrap();
        let b = s.take().unwrap();
        assert_ne!(a, b);
        assert_eq!(s.take(), None, "two buffers, two pictures in flight");
        s.give(a);
        s.give(a);
        s.give(7);
        assert_eq!(
            s.free(),
            1,
            "a buffer given twice or never owned does not add one"
        );
        assert_eq!(s.take(), Some(a));
        assert_eq!(s.take(), None);
    }

    #[test]
    fn pictures_are_copied_between_strides() {
        // A 4x3 NV12 picture with 6-byte lines into 8-byte lines and a plane padded to 4 lines.
        let (w, h) = (4, 3);
        let from = Layout {
            stride: 6,
            plane_lines: 3,
        };
        let src: Vec<u8> = (0..6 * (3 + 2)).map(|i| i as u8).collect();
        let to = Layout {
            stride: 8,
            plane_lines: 4,
        };
        let mut dst = vec![0xEE; 8 * (4 + 2)];
        let n = copy_picture(RawFormat::Nv12, w, h, &src, from, &mut dst, to).unwrap();
        assert_eq!(n, 48);
        for l in 0..3 {
            assert_eq!(
                &dst[l * 8..l * 8 + 4],
                &src[l * 6..l * 6 + 4],
                "luma line {l}"
            );
        }
        for l in 0..2 {
            assert_eq!(
                &dst[(4 + l) * 8..(4 + l) * 8 + 4],
                &src[(3 + l) * 6..(3 + l) * 6 + 4],
                "chroma line {l}"
            );
        }
        // The same layout is one copy; a picture too large for the buffer is an error.
        let mut same = vec![0; src.len()];
        assert_eq!(
            copy_picture(RawFormat::Nv12, w, h, &src, from, &mut same, from),
            Ok(30)
        );
        assert_eq!(same, src);
        let yuyv = Layout {
            stride: 8,
            plane_lines: 3,
        };
        assert!(copy_picture(RawFormat::Yuyv, 4, 3, &src[..24], yuyv, &mut [0; 23], yuyv).is_err());
    }
}
