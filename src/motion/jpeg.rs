//! A JPEG picture at 1/8 scale from its DC coefficients only: every 8x8 luma block becomes one
//! pixel (the block's mean), without dequantising or transforming any AC coefficient. The AC
//! codes are still Huffman-decoded to find where the next block starts, but that is all that is
//! done with them, so this costs a fraction of a full decode.
//!
//! Baseline and extended sequential Huffman JPEG (SOF0/SOF1, 8-bit), grey or YCbCr with any
//! sampling, restart intervals: what cameras and Eyrie's own software encoder make. Progressive,
//! arithmetic-coded, lossless and 12-bit pictures are refused with a clear error.
//!
//! The bytes come from outside (a camera): every length and index is checked, the picture's size
//! is bounded ([`MAX_SIDE`]), and a damaged stream ends in an error, never a panic or a loop
//! without end.

use super::Luma;

/// Widest and tallest picture decoded.
pub const MAX_SIDE: u16 = 8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JPEG: {0}")]
pub struct JpegError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, JpegError> {
    Err(JpegError(what.into()))
}

/// A canonical Huffman table as JPEG defines it (Annex C), decoded bit by bit over 16 lengths,
/// with a lookup of the first [`FAST_BITS`] bits for the common short codes.
#[derive(Clone)]
struct Huffman {
    /// Per code length 1..=16: the largest code of that length (+1), -1 when none.
    max_code: [i32; 17],
    /// Per code length: index into `values` of its first code, minus that code.
    offset: [i32; 17],
    values: Vec<u8>,
    /// For the first FAST_BITS bits: (length, value), length 0 when the code is longer.
    fast: Vec<(u8, u8)>,
}

const FAST_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Self, JpegError> {
        let mut max_code = [-1i32; 17];
        let mut offset = [0i32; 17];
        let mut fast = vec![(0u8, 0u8); 1 << FAST_BITS];
        let mut code: i32 = 0;
        let mut k: usize = 0;
        for len in 1..=16usize {
            let n = counts[len - 1] as usize;
            offset[len] = k as i32 - code;
            for _ in 0..n {
                if code >= (1 << len) {
                    return bad("a Huffman table with too many codes");
                }
                if len as u32 <= FAST_BITS {
                    let shift = FAST_BITS - len as u32;
                    let first = (code as usize) << shift;
                    for e in &mut fast[first..first + (1 << shift)] {
                        *e = (len as u8, values[k]);
                    }
                }
                code += 1;
                k += 1;
            }
            max_code[len] = if n > 0 { code } else { -1 };
            code <<= 1;
        }
        Ok(Self {
            max_code,
            offset,
            values,
            fast,
        })
    }
}

/// The entropy-coded bytes of a scan, read bit by bit: `FF 00` is a data byte `FF`, any other
/// marker ends the data (reads past it give zero bits, a bounded number of times).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    /// Zero bits handed out past the end or a marker.
    padded: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            acc: 0,
            n: 0,
            padded: 0,
        }
    }

    fn fill(&mut self) -> Result<(), JpegError> {
        while self.n <= 56 {
            let b = match self.data.get(self.pos) {
                Some(0xFF) => match self.data.get(self.pos + 1) {
                    Some(0x00) => {
                        self.pos += 2;
                        0xFF
                    }
                    _ => {
                        self.pad()?;
                        0
                    }
                },
                Some(&b) => {
                    self.pos += 1;
                    b
                }
                None => {
                    self.pad()?;
                    0
                }
            };
            self.acc |= (b as u64) << (56 - self.n);
            self.n += 8;
        }
        Ok(())
    }

    /// A byte of zeros past the data: a few are normal (the last codes of a scan), many mean
    /// the data is cut short.
    fn pad(&mut self) -> Result<(), JpegError> {
        self.padded += 1;
        if self.padded > 64 {
            return bad("the picture data ends too soon");
        }
        Ok(())
    }

    fn peek(&mut self, bits: u32) -> Result<u32, JpegError> {
        if self.n < bits {
            self.fill()?;
        }
        Ok((self.acc >> (64 - bits)) as u32)
    }

    fn skip(&mut self, bits: u32) {
        self.acc <<= bits;
        self.n -= bits;
    }

    fn get(&mut self, bits: u32) -> Result<u32, JpegError> {
        if bits == 0 {
            return Ok(0);
        }
        let v = self.peek(bits)?;
        self.skip(bits);
        Ok(v)
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, JpegError> {
        let look = self.peek(FAST_BITS)? as usize;
        let (len, v) = h.fast[look];
        if len > 0 {
            self.skip(len as u32);
            return Ok(v);
        }
        let bits = self.peek(16)? as i32;
        for len in (FAST_BITS as usize + 1)..=16 {
            let code = bits >> (16 - len);
            if code < h.max_code[len] {
                self.skip(len as u32);
                let i = (h.offset[len] + code) as usize;
                return h
                    .values
                    .get(i)
                    .copied()
                    .ok_or_else(|| JpegError("a bad Huffman code".into()));
            }
        }
        bad("a bad Huffman code")
    }

    /// A `bits`-bit coefficient difference, sign-extended as JPEG codes it (F.2.2.1).
    fn signed(&mut self, bits: u32) -> Result<i32, JpegError> {
        if bits == 0 {
            return Ok(0);
        }
        let v = self.get(bits)? as i32;
        Ok(if v < (1 << (bits - 1)) {
            v - (1 << bits) + 1
        } else {
            v
        })
    }

    /// At a restart marker: drop the bits left of the byte and step over `FF Dn`.
    fn restart(&mut self) -> Result<(), JpegError> {
        self.acc = 0;
        self.n = 0;
        self.padded = 0;
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xFF), Some(0xD0..=0xD7)) => {
                self.pos += 2;
                Ok(())
            }
            _ => bad("a restart marker is missing"),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
}

/// Decodes the luma DC of `jpeg` into a picture of one pixel per 8x8 block, cropped to the
/// picture (`ceil(width / 8)` by `ceil(height / 8)`).
pub fn luma_dc(jpeg: &[u8]) -> Result<Luma, JpegError> {
    if jpeg.get(..2) != Some(&[0xFF, 0xD8]) {
        return bad("not a JPEG picture (no start marker)");
    }
    let mut pos = 2;
    let mut quant = [[0u16; 1]; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut frame: Option<(u16, u16, Vec<Component>)> = None;
    let mut restart_interval = 0usize;
    loop {
        // Markers may be preceded by any number of FF fill bytes.
        while jpeg.get(pos) == Some(&0xFF) && jpeg.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(0xFF), Some(&marker)) = (jpeg.get(pos), jpeg.get(pos + 1)) else {
            return bad("a marker was expected");
        };
        pos += 2;
        if marker == 0xD9 {
            return bad("the picture ends before its data");
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue; // no length
        }
        let len = match jpeg.get(pos..pos + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => return bad("a segment is cut short"),
        };
        let Some(body) = len
            .checked_sub(2)
            .and_then(|n| jpeg.get(pos + 2..pos + 2 + n))
        else {
            return bad("a segment is cut short");
        };
        pos += len;
        match marker {
            0xC0 | 0xC1 => frame = Some(read_frame(body)?),
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return bad(format!(
                    "only baseline pictures are read (this one is SOF{})",
                    marker - 0xC0
                ));
            }
            0xC4 => read_huffman(body, &mut dc_tables, &mut ac_tables)?,
            0xDB => read_quant(body, &mut quant)?,
            0xDD => {
                let Some(b) = body.get(..2) else {
                    return bad("a restart interval is cut short");
                };
                restart_interval = u16::from_be_bytes([b[0], b[1]]) as usize;
            }
            0xDA => {
                let Some((width, height, comps)) = &frame else {
                    return bad("the picture data comes before its size");
                };
                return read_scan(
                    body,
                    &jpeg[pos..],
                    (*width, *height, comps.as_slice()),
                    &quant,
                    &dc_tables,
                    &ac_tables,
                    restart_interval,
                );
            }
            _ => {} // APPn, COM and the like
        }
    }
}

fn read_frame(b: &[u8]) -> Result<(u16, u16, Vec<Component>), JpegError> {
    let Some(head) = b.get(..6) else {
        return bad("the picture header is cut short");
    };
    if head[0] != 8 {
        return bad(format!("{}-bit samples are not read", head[0]));
    }
    let height = u16::from_be_bytes([head[1], head[2]]);
    let width = u16::from_be_bytes([head[3], head[4]]);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return bad(format!(
            "a {width}x{height} picture (1 to {MAX_SIDE} pixels a side are read)"
        ));
    }
    let n = head[5] as usize;
    if !(1..=4).contains(&n) {
        return bad(format!("{n} colour components"));
    }
    let mut comps = Vec::with_capacity(n);
    for i in 0..n {
        let Some(c) = b.get(6 + 3 * i..9 + 3 * i) else {
            return bad("the picture header is cut short");
        };
        let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return bad("a component's sampling or table is out of range");
        }
        comps.push(Component {
            id: c[0],
            h,
            v,
            quant: c[2] as usize,
        });
    }
    Ok((width, height, comps))
}

fn read_huffman(
    mut b: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> Result<(), JpegError> {
    while !b.is_empty() {
        let Some(head) = b.get(..17) else {
            return bad("a Huffman table is cut short");
        };
        let (class, id) = (head[0] >> 4, (head[0] & 15) as usize);
        if class > 1 || id > 3 {
            return bad("a Huffman table's class or id is out of range");
        }
        let counts: [u8; 16] = head[1..17].try_into().expect("16 bytes");
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 {
            return bad("a Huffman table with more than 256 codes");
        }
        let Some(values) = b.get(17..17 + total) else {
            return bad("a Huffman table is cut short");
        };
        let table = Huffman::new(&counts, values.to_vec())?;
        if class == 0 {
            dc[id] = Some(table);
        } else {
            ac[id] = Some(table);
        }
        b = &b[17 + total..];
    }
    Ok(())
}

/// Keeps only the first (DC) entry of each quantisation table: nothing else is needed.
fn read_quant(mut b: &[u8], quant: &mut [[u16; 1]; 4]) -> Result<(), JpegError> {
    while !b.is_empty() {
        let (precision, id) = (b[0] >> 4, (b[0] & 15) as usize);
        let size = match precision {
            0 => 64,
            1 => 128,
            _ => return bad("a quantisation table's precision is out of range"),
        };
        if id > 3 {
            return bad("a quantisation table's id is out of range");
        }
        let Some(t) = b.get(1..1 + size) else {
            return bad("a quantisation table is cut short");
        };
        quant[id][0] = if precision == 0 {
            t[0] as u16
        } else {
            u16::from_be_bytes([t[0], t[1]])
        };
        b = &b[1 + size..];
    }
    Ok(())
}

/// One component of a scan: which picture component, its tables, where its blocks go.
struct ScanComponent<'t> {
    index: usize,
    dc: &'t Huffman,
    ac: &'t Huffman,
    pred: i32,
}

fn read_scan(
    header: &[u8],
    data: &[u8],
    (width, height, comps): (u16, u16, &[Component]),
    quant: &[[u16; 1]; 4],
    dc_tables: &[Option<Huffman>; 4],
    ac_tables: &[Option<Huffman>; 4],
    restart_interval: usize,
) -> Result<Luma, JpegError> {
    let Some(&n) = header.first() else {
        return bad("a scan header is cut short");
    };
    let n = n as usize;
    if n == 0 || n > comps.len() {
        return bad("a scan with a bad number of components");
    }
    let mut scan = Vec::with_capacity(n);
    for i in 0..n {
        let Some(s) = header.get(1 + 2 * i..3 + 2 * i) else {
            return bad("a scan header is cut short");
        };
        let Some(index) = comps.iter().position(|c| c.id == s[0]) else {
            return bad("a scan names a component the picture does not have");
        };
        let (td, ta) = ((s[1] >> 4) as usize, (s[1] & 15) as usize);
        let (Some(Some(dc)), Some(Some(ac))) = (dc_tables.get(td), ac_tables.get(ta)) else {
            return bad("a scan uses a Huffman table that was not given");
        };
        scan.push(ScanComponent {
            index,
            dc,
            ac,
            pred: 0,
        });
    }
    if scan.iter().all(|s| s.index != 0) {
        return bad("the first scan has no luma (several scans are not read)");
    }
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    let (w, h) = (width as usize, height as usize);
    let luma = comps[0];
    // Luma blocks across and down, as the output is cropped to the picture.
    let out_w = (w * luma.h).div_ceil(hmax).div_ceil(8);
    let out_h = (h * luma.v).div_ceil(vmax).div_ceil(8);
    let q0 = quant[luma.quant][0].max(1) as i32;
    let mut out = vec![0u8; out_w * out_h];
    let mut put = |bx: usize, by: usize, dc: i32| {
        if bx < out_w && by < out_h {
            // The block's mean sample is DC × Q / 8, centred on 128.
            out[by * out_w + bx] = (dc * q0 / 8 + 128).clamp(0, 255) as u8;
        }
    };
    let mut bits = Bits::new(data);
    let (mcus_x, mcus_y, interleaved) = if n > 1 {
        (w.div_ceil(8 * hmax), h.div_ceil(8 * vmax), true)
    } else {
        // One component alone: its own blocks in raster order, one per "MCU".
        let c = comps[scan[0].index];
        (
            (w * c.h).div_ceil(hmax).div_ceil(8),
            (h * c.v).div_ceil(vmax).div_ceil(8),
            false,
        )
    };
    let total = mcus_x * mcus_y;
    for m in 0..total {
        if restart_interval > 0 && m > 0 && m % restart_interval == 0 {
            bits.restart()?;
            for s in &mut scan {
                s.pred = 0;
            }
        }
        let (mx, my) = (m % mcus_x, m / mcus_x);
        for s in &mut scan {
            let c = comps[s.index];
            let (bh, bv) = if interleaved { (c.h, c.v) } else { (1, 1) };
            for by in 0..bv {
                for bx in 0..bh {
                    let size = bits.decode(s.dc)? as u32;
                    if size > 11 {
                        return bad("a DC difference out of range");
                    }
                    s.pred = s.pred.wrapping_add(bits.signed(size)?);
                    skip_ac(&mut bits, s.ac)?;
                    if s.index == 0 {
                        put(mx * bh + bx, my * bv + by, s.pred);
                    }
                }
            }
        }
    }
    Ok(Luma {
        width: out_w,
        height: out_h,
        data: out,
    })
}

/// Steps over a block's 63 AC coefficients without keeping them.
fn skip_ac(bits: &mut Bits, ac: &Huffman) -> Result<(), JpegError> {
    let mut k = 1;
    while k < 64 {
        let rs = bits.decode(ac)?;
        let (run, size) = ((rs >> 4) as usize, (rs & 15) as u32);
        if size == 0 {
            if run != 15 {
                return Ok(()); // end of block
            }
            k += 16;
            continue;
        }
        k += run + 1;
        if k > 64 {
            return bad("a block with more than 64 coefficients");
        }
        bits.get(size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`x`h` grey picture with a brighter square, encoded by the same encoder Eyrie uses for
    /// raw cameras.
    fn encode(w: u16, h: u16, color: jpeg_encoder::ColorType, px: &[u8], restart: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut out, 90);
        if restart > 0 {
            e.set_restart_interval(restart);
        }
        e.encode(px, w, h, color).unwrap();
        out
    }

    fn scene(w: usize, h: usize) -> Vec<u8> {
        let mut px = vec![60u8; w * h];
        for y in 16..48 {
            for x in 32..64 {
                px[y * w + x] = 200;
            }
        }
        px
    }

    #[test]
    fn grey_picture_block_means() {
        let (w, h) = (100, 60);
        let jpeg = encode(
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Luma,
            &scene(w, h),
            0,
        );
        let l = luma_dc(&jpeg).unwrap();
        assert_eq!((l.width, l.height), (13, 8));
        assert!(l.data[0].abs_diff(60) <= 3, "{}", l.data[0]);
        assert!(l.data[3 * 13 + 5].abs_diff(200) <= 3);
        assert!(l.data[7 * 13 + 12].abs_diff(60) <= 3);
    }

    #[test]
    fn colour_subsampled_with_restarts() {
        let (w, h) = (96, 64);
        let grey = scene(w, h);
        let rgb: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
        for restart in [0, 1, 3] {
            let mut out = Vec::new();
            let mut e = jpeg_encoder::Encoder::new(&mut out, 85);
            e.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
            if restart > 0 {
                e.set_restart_interval(restart);
            }
            e.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
                .unwrap();
            let l = luma_dc(&out).unwrap();
            assert_eq!((l.width, l.height), (12, 8));
            assert!(l.data[0].abs_diff(60) <= 3, "restart {restart}");
            assert!(l.data[3 * 12 + 5].abs_diff(200) <= 3, "restart {restart}");
        }
    }

    #[test]
    fn damaged_pictures_are_errors() {
        let (w, h) = (64, 48);
        let jpeg = encode(
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Luma,
            &scene(w, h),
            0,
        );
        assert!(luma_dc(b"").is_err());
        assert!(luma_dc(b"\xFF\xD8").is_err());
        assert!(luma_dc(b"\xFF\xD8\xFF\xD9").is_err());
        // Every truncation and many single-byte changes end in Ok or an error, never a panic.
        for cut in 0..jpeg.len() {
            let _ = luma_dc(&jpeg[..cut]);
        }
        for i in 0..jpeg.len() {
            for v in [0x00, 0xFF, 0x55] {
                let mut j = jpeg.clone();
                j[i] = v;
                let _ = luma_dc(&j);
            }
        }
        // A picture cut in the middle of its data: more than a little padding is needed.
        let noisy: Vec<u8> = (0..256 * 256u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let big = encode(256, 256, jpeg_encoder::ColorType::Luma, &noisy, 0);
        let e = luma_dc(&big[..big.len() / 2]).unwrap_err();
        assert!(e.0.contains("ends too soon"), "{e}");
        // A progressive picture is refused by name.
        let mut p = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut p, 80);
        e.set_progressive(true);
        e.encode(
            &scene(w, h),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Luma,
        )
        .unwrap();
        assert!(luma_dc(&p).unwrap_err().0.contains("SOF2"));
    }
}
