//! JPEG-LS decoding (ITU-T T.87 | ISO/IEC 14495-1): lossless and near-lossless, 2 to 16
//! bits, any number of components, in each of the three interleave modes (up to four
//! components when sample-interleaved, as in CharLS).
//!
//! Where the standard leaves a choice (sample-interleaved run interruptions), this follows
//! CharLS, the reference codec inside DCMTK and GDCM, so that what they encode decodes
//! here. Not supported, and refused as such: mapping tables, restart intervals, point
//! transforms and subsampled components, none of which DICOM encoders emit in practice.

use crate::ImagingError;

/// A decoded image: samples interleaved by pixel, whatever the interleave mode was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub components: u32,
    /// Bits per sample (the frame header's P).
    pub precision: u8,
    pub samples: Vec<i32>,
}

/// The most samples one frame may hold: 16384 × 16384.
const MAX_SAMPLES: usize = 1 << 28;
/// The most components a sample-interleaved scan may have (as in CharLS).
const MAX_INTERLEAVED: usize = 4;
/// Golomb parameters of valid streams stay far below this; garbage could push them past
/// what a shift can hold.
const MAX_K: u32 = 24;

fn malformed(what: &'static str) -> ImagingError {
    ImagingError::Malformed(what)
}

fn unsupported(what: &str) -> ImagingError {
    ImagingError::Unsupported(format!("JPEG-LS with {what}"))
}

/// Decodes a JPEG-LS codestream (SOI to EOI).
pub fn decode(data: &[u8]) -> Result<Image, ImagingError> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(malformed("JPEG-LS stream has no SOI marker"));
    }
    let mut at = 2;
    let mut frame: Option<FrameHeader> = None;
    let mut preset = Preset::default();
    let mut samples = Vec::new();
    loop {
        let marker = next_marker(data, &mut at)?;
        match marker {
            0xD9 => break,
            0xF7 => {
                let header = FrameHeader::parse(segment(data, &mut at)?)?;
                let count = header.width * header.height * header.components.len();
                // A flat image codes to almost nothing, so the header alone must not be able
                // to claim gigabytes.
                if count > MAX_SAMPLES {
                    return Err(unsupported("more than 2^28 samples in a frame"));
                }
                samples = vec![0; count];
                frame = Some(header);
            }
            0xF8 => preset = Preset::parse(segment(data, &mut at)?)?,
            0xDD => {
                let body = segment(data, &mut at)?;
                if body.iter().any(|b| *b != 0) {
                    return Err(unsupported("restart intervals"));
                }
            }
            0xDA => {
                let frame = frame.as_ref().ok_or(malformed("JPEG-LS scan before its frame header"))?;
                let scan = ScanHeader::parse(segment(data, &mut at)?, frame)?;
                let params = Params::new(frame.precision, scan.near, &preset)?;
                let mut decoder = ScanDecoder::new(data, at, params);
                decoder.decode(frame, &scan, &mut samples)?;
                at = decoder.bits.end_of_scan();
            }
            0xE0..=0xEF | 0xFE => {
                segment(data, &mut at)?;
            }
            _ => return Err(malformed("JPEG-LS stream has a marker of another JPEG process")),
        }
    }
    let frame = frame.ok_or(malformed("JPEG-LS stream has no frame header"))?;
    Ok(Image {
        width: frame.width as u32,
        height: frame.height as u32,
        components: frame.components.len() as u32,
        precision: frame.precision,
        samples,
    })
}

/// Moves past fill bytes to the next marker and returns its code.
fn next_marker(data: &[u8], at: &mut usize) -> Result<u8, ImagingError> {
    if data.get(*at) != Some(&0xFF) {
        return Err(malformed("JPEG-LS stream: expected a marker"));
    }
    while data.get(*at) == Some(&0xFF) {
        *at += 1;
    }
    let code = *data.get(*at).ok_or(malformed("JPEG-LS stream ends without EOI"))?;
    *at += 1;
    Ok(code)
}

/// The body of a marker segment (after its length), moving `at` past it.
fn segment<'a>(data: &'a [u8], at: &mut usize) -> Result<&'a [u8], ImagingError> {
    let length = data.get(*at..*at + 2).ok_or(malformed("JPEG-LS segment length"))?;
    let length = u16::from_be_bytes([length[0], length[1]]) as usize;
    let body = data.get(*at + 2..*at + length.max(2)).ok_or(malformed("JPEG-LS segment overruns the stream"))?;
    *at += length.max(2);
    Ok(body)
}

fn u16_at(body: &[u8], at: usize) -> Result<usize, ImagingError> {
    let b = body.get(at..at + 2).ok_or(malformed("JPEG-LS segment too short"))?;
    Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
}

struct FrameHeader {
    precision: u8,
    height: usize,
    width: usize,
    /// Component identifiers, in frame order.
    components: Vec<u8>,
}

impl FrameHeader {
    fn parse(body: &[u8]) -> Result<Self, ImagingError> {
        let precision = *body.first().ok_or(malformed("JPEG-LS frame header"))?;
        let (height, width) = (u16_at(body, 1)?, u16_at(body, 3)?);
        let count = *body.get(5).ok_or(malformed("JPEG-LS frame header"))? as usize;
        if !(2..=16).contains(&precision) {
            return Err(malformed("JPEG-LS precision outside 2 to 16 bits"));
        }
        if width == 0 || height == 0 {
            return Err(unsupported("dimensions set by an LSE extension"));
        }
        let mut components = Vec::with_capacity(count);
        for c in 0..count {
            let spec = body.get(6 + 3 * c..9 + 3 * c).ok_or(malformed("JPEG-LS frame header"))?;
            if spec[1] != 0x11 {
                return Err(unsupported("subsampled components"));
            }
            components.push(spec[0]);
        }
        if components.is_empty() {
            return Err(malformed("JPEG-LS frame has no components"));
        }
        Ok(Self { precision, height, width, components })
    }
}

/// Coding parameters set by an LSE preset segment; zero means the default.
#[derive(Default)]
struct Preset {
    maxval: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
}

impl Preset {
    fn parse(body: &[u8]) -> Result<Self, ImagingError> {
        match body.first() {
            Some(1) => Ok(Self {
                maxval: u16_at(body, 1)? as i32,
                t1: u16_at(body, 3)? as i32,
                t2: u16_at(body, 5)? as i32,
                t3: u16_at(body, 7)? as i32,
                reset: u16_at(body, 9)? as i32,
            }),
            _ => Err(unsupported("mapping tables or extended dimensions")),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Interleave {
    None,
    Line,
    Sample,
}

struct ScanHeader {
    /// Indexes into the frame's components, in scan order.
    components: Vec<usize>,
    near: i32,
    interleave: Interleave,
}

impl ScanHeader {
    fn parse(body: &[u8], frame: &FrameHeader) -> Result<Self, ImagingError> {
        let count = *body.first().ok_or(malformed("JPEG-LS scan header"))? as usize;
        let mut components = Vec::with_capacity(count);
        for c in 0..count {
            let spec = body.get(1 + 2 * c..3 + 2 * c).ok_or(malformed("JPEG-LS scan header"))?;
            if spec[1] != 0 {
                return Err(unsupported("mapping tables"));
            }
            let index = frame.components.iter().position(|id| *id == spec[0]);
            components.push(index.ok_or(malformed("JPEG-LS scan names an unknown component"))?);
        }
        let tail = body.get(1 + 2 * count..4 + 2 * count).ok_or(malformed("JPEG-LS scan header"))?;
        let interleave = match (tail[1], count) {
            (_, 0) => return Err(malformed("JPEG-LS scan has no components")),
            (0, 1) => Interleave::None,
            (1, _) => Interleave::Line,
            (2, count) if count <= MAX_INTERLEAVED => Interleave::Sample,
            (2, _) => return Err(unsupported("more than four sample-interleaved components")),
            _ => return Err(malformed("JPEG-LS interleave mode")),
        };
        if tail[2] & 0x0F != 0 {
            return Err(unsupported("a point transform"));
        }
        Ok(Self { components, near: tail[0] as i32, interleave })
    }
}

/// The coding parameters of one scan (T.87 C.2.4.1 and A.2.1).
#[derive(Clone, Copy)]
struct Params {
    maxval: i32,
    near: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
    range: i32,
    qbpp: u32,
    limit: i32,
}

fn ceil_log2(value: i32) -> u32 {
    let mut n = 0;
    while (1i64 << n) < value as i64 {
        n += 1;
    }
    n
}

impl Params {
    fn new(precision: u8, near: i32, preset: &Preset) -> Result<Self, ImagingError> {
        let maxval = if preset.maxval > 0 { preset.maxval } else { (1 << precision) - 1 };
        if near > (maxval / 2).min(255) {
            return Err(malformed("JPEG-LS NEAR too large"));
        }
        // Default thresholds, T.87 C.2.4.1.1.1, from BASIC_T1, T2, T3 = 3, 7, 21.
        let clamp = |i: i32, j: i32| if i > maxval || i < j { j } else { i };
        let (t1, t2, t3) = if maxval >= 128 {
            let factor = (maxval.min(4095) + 128) / 256;
            let t1 = clamp(factor + 2 + 3 * near, near + 1);
            let t2 = clamp(factor * (7 - 3) + 3 + 5 * near, t1);
            (t1, t2, clamp(factor * (21 - 4) + 4 + 7 * near, t2))
        } else {
            let factor = 256 / (maxval + 1);
            let t1 = clamp((3 / factor + 3 * near).max(2), near + 1);
            let t2 = clamp((7 / factor + 5 * near).max(3), t1);
            (t1, t2, clamp((21 / factor + 7 * near).max(4), t2))
        };
        let or = |given: i32, default: i32| if given > 0 { given } else { default };
        let range = (maxval + 2 * near) / (2 * near + 1) + 1;
        let bpp = ceil_log2(maxval + 1).max(2) as i32;
        Ok(Self {
            maxval,
            near,
            t1: or(preset.t1, t1),
            t2: or(preset.t2, t2),
            t3: or(preset.t3, t3),
            reset: or(preset.reset, 64),
            range,
            qbpp: ceil_log2(range),
            limit: 2 * (bpp + bpp.max(8)),
        })
    }

    fn quantize(&self, d: i32) -> i32 {
        match d {
            d if d <= -self.t3 => -4,
            d if d <= -self.t2 => -3,
            d if d <= -self.t1 => -2,
            d if d < -self.near => -1,
            d if d <= self.near => 0,
            d if d < self.t1 => 1,
            d if d < self.t2 => 2,
            d if d < self.t3 => 3,
            _ => 4,
        }
    }

    /// Undoes the modulo reduction of the error and clamps to the sample range.
    fn reconstruct(&self, value: i32) -> i32 {
        let span = self.range * (2 * self.near + 1);
        let value = if value < -self.near {
            value + span
        } else if value > self.maxval + self.near {
            value - span
        } else {
            value
        };
        value.clamp(0, self.maxval)
    }
}

/// Reads bits most significant first, dropping the stuffed zero bit after each 0xFF byte
/// and stopping at the marker that ends the scan.
struct BitReader<'a> {
    data: &'a [u8],
    at: usize,
    /// Pending bits, aligned to the top.
    bits: u64,
    count: u32,
    after_ff: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], at: usize) -> Self {
        Self { data, at, bits: 0, count: 0, after_ff: false }
    }

    fn fill(&mut self) {
        while self.count <= 56 {
            let Some(&byte) = self.data.get(self.at) else { return };
            if byte == 0xFF && self.data.get(self.at + 1).is_some_and(|next| next & 0x80 != 0) {
                return;
            }
            self.at += 1;
            let width = if self.after_ff { 7 } else { 8 };
            let value = (byte as u64) & ((1 << width) - 1);
            self.bits |= value << (64 - self.count - width);
            self.count += width;
            self.after_ff = byte == 0xFF;
        }
    }

    fn read(&mut self, n: u32) -> Result<i32, ImagingError> {
        if n == 0 {
            return Ok(0);
        }
        if self.count < n {
            self.fill();
            if self.count < n {
                return Err(malformed("JPEG-LS scan ends early"));
            }
        }
        let value = (self.bits >> (64 - n)) as i32;
        self.bits <<= n;
        self.count -= n;
        Ok(value)
    }

    fn bit(&mut self) -> Result<bool, ImagingError> {
        Ok(self.read(1)? == 1)
    }

    /// The number of 0 bits before the next 1 bit (which is consumed), up to `max`.
    fn zeros(&mut self, max: i32) -> Result<i32, ImagingError> {
        let mut zeros = 0;
        loop {
            if self.count == 0 {
                self.fill();
                if self.count == 0 {
                    return Err(malformed("JPEG-LS scan ends early"));
                }
            }
            let leading = self.bits.leading_zeros().min(self.count);
            zeros += leading as i32;
            if zeros > max {
                return Err(malformed("JPEG-LS code longer than its limit"));
            }
            if leading < self.count {
                // `leading + 1` is 64 when the 1 is the last of 64 pending bits.
                self.bits = self.bits.checked_shl(leading + 1).unwrap_or(0);
                self.count -= leading + 1;
                return Ok(zeros);
            }
            self.bits = 0;
            self.count = 0;
        }
    }

    /// A limited-length Golomb code (T.87 A.5.3).
    fn golomb(&mut self, k: u32, limit: i32, qbpp: u32) -> Result<i32, ImagingError> {
        let high = self.zeros(limit)?;
        if high >= limit - (qbpp as i32 + 1) {
            return Ok(self.read(qbpp)? + 1);
        }
        Ok((high << k) + self.read(k)?)
    }

    /// Where the marker after this scan starts.
    fn end_of_scan(&self) -> usize {
        let mut at = self.at;
        while at + 1 < self.data.len() && !(self.data[at] == 0xFF && self.data[at + 1] & 0x80 != 0) {
            at += 1;
        }
        at
    }
}

/// Run lengths grow and shrink through this table (T.87 A.7.1.1).
const J: [u32; 32] =
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// Statistics of a regular-mode context (T.87 A.2.2).
#[derive(Clone, Copy)]
struct Context {
    a: i32,
    b: i32,
    c: i32,
    n: i32,
}

/// Statistics of a run-interruption context.
#[derive(Clone, Copy)]
struct RunContext {
    a: i32,
    n: i32,
    nn: i32,
}

struct ScanDecoder<'a> {
    bits: BitReader<'a>,
    params: Params,
    /// Indexed by the three quantized gradients, each shifted to 0..=8.
    contexts: Vec<Context>,
    /// Run interruption contexts for RItype 0 and 1.
    run_contexts: [RunContext; 2],
    run_index: usize,
}

impl<'a> ScanDecoder<'a> {
    fn new(data: &'a [u8], at: usize, params: Params) -> Self {
        let a = ((params.range + 32) / 64).max(2);
        Self {
            bits: BitReader::new(data, at),
            params,
            contexts: vec![Context { a, b: 0, c: 0, n: 1 }; 729],
            run_contexts: [RunContext { a, n: 1, nn: 0 }; 2],
            run_index: 0,
        }
    }

    fn decode(&mut self, frame: &FrameHeader, scan: &ScanHeader, out: &mut [i32]) -> Result<(), ImagingError> {
        let (width, height, stride) = (frame.width, frame.height, frame.components.len());
        let count = scan.components.len();
        match scan.interleave {
            Interleave::None | Interleave::Line => {
                // One pair of lines per component, each with a sample of margin either side.
                let mut previous = vec![vec![0; width + 2]; count];
                let mut current = vec![vec![0; width + 2]; count];
                let mut run_indexes = vec![0; count];
                for y in 0..height {
                    for (c, &component) in scan.components.iter().enumerate() {
                        std::mem::swap(&mut previous[c], &mut current[c]);
                        let (above, line) = (&mut previous[c], &mut current[c]);
                        above[width + 1] = above[width];
                        line[0] = above[1];
                        self.run_index = run_indexes[c];
                        self.line(above, line, width)?;
                        run_indexes[c] = self.run_index;
                        for x in 0..width {
                            out[(y * width + x) * stride + component] = line[x + 1];
                        }
                    }
                }
            }
            Interleave::Sample => {
                let mut previous = vec![0; (width + 2) * count];
                let mut current = vec![0; (width + 2) * count];
                for y in 0..height {
                    std::mem::swap(&mut previous, &mut current);
                    previous.copy_within(width * count..(width + 1) * count, (width + 1) * count);
                    current[..count].copy_from_slice(&previous[count..2 * count]);
                    self.pixel_line(&previous, &mut current, width, count)?;
                    for x in 0..width {
                        for (c, &component) in scan.components.iter().enumerate() {
                            out[(y * width + x) * stride + component] = current[(x + 1) * count + c];
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One line of one component; `above` and `line` hold position x at index x + 1.
    fn line(&mut self, above: &[i32], line: &mut [i32], width: usize) -> Result<(), ImagingError> {
        let mut x = 0;
        while x < width {
            let (ra, rb, rc, rd) = (line[x], above[x + 1], above[x], above[x + 2]);
            let q = [self.params.quantize(rd - rb), self.params.quantize(rb - rc), self.params.quantize(rc - ra)];
            if q == [0, 0, 0] {
                let run = self.run(width - x)?;
                line[x + 1..x + 1 + run].fill(ra);
                x += run;
                if x < width {
                    let rb = above[x + 1];
                    line[x + 1] = self.interruption(ra, rb)?;
                    self.run_index = self.run_index.saturating_sub(1);
                    x += 1;
                }
            } else {
                line[x + 1] = self.regular(q, ra, rb, rc)?;
                x += 1;
            }
        }
        Ok(())
    }

    /// One line of sample-interleaved pixels of `n` components each.
    fn pixel_line(&mut self, above: &[i32], line: &mut [i32], width: usize, n: usize) -> Result<(), ImagingError> {
        let mut x = 0;
        while x < width {
            let at = |position: usize, c: usize| position * n + c;
            let mut gradients = [[0; 3]; MAX_INTERLEAVED];
            for (c, q) in gradients.iter_mut().enumerate().take(n) {
                let (ra, rb, rc, rd) = (line[at(x, c)], above[at(x + 1, c)], above[at(x, c)], above[at(x + 2, c)]);
                *q = [self.params.quantize(rd - rb), self.params.quantize(rb - rc), self.params.quantize(rc - ra)];
            }
            let gradients = &gradients[..n];
            if gradients.iter().all(|q| *q == [0, 0, 0]) {
                let run = self.run(width - x)?;
                for position in x + 1..x + 1 + run {
                    line.copy_within(at(x, 0)..at(x + 1, 0), at(position, 0));
                }
                x += run;
                if x < width {
                    for c in 0..n {
                        let (ra, rb) = (line[at(x, c)], above[at(x + 1, c)]);
                        let error = self.interruption_error(0)?;
                        let sign = if rb >= ra { 1 } else { -1 };
                        line[at(x + 1, c)] = self.params.reconstruct(rb + sign * error * (2 * self.params.near + 1));
                    }
                    self.run_index = self.run_index.saturating_sub(1);
                    x += 1;
                }
            } else {
                for (c, &q) in gradients.iter().enumerate() {
                    let (ra, rb, rc) = (line[at(x, c)], above[at(x + 1, c)], above[at(x, c)]);
                    line[at(x + 1, c)] = self.regular(q, ra, rb, rc)?;
                }
                x += 1;
            }
        }
        Ok(())
    }

    /// A sample in regular mode (T.87 A.3 to A.6).
    fn regular(&mut self, q: [i32; 3], ra: i32, rb: i32, rc: i32) -> Result<i32, ImagingError> {
        let negative = q[0] < 0 || (q[0] == 0 && (q[1] < 0 || (q[1] == 0 && q[2] < 0)));
        let sign = if negative { -1 } else { 1 };
        let index = (((q[0] * sign + 4) * 9 + q[1] * sign + 4) * 9 + q[2] * sign + 4) as usize;
        let p = self.params;
        let predicted = if rc >= ra.max(rb) {
            ra.min(rb)
        } else if rc <= ra.min(rb) {
            ra.max(rb)
        } else {
            ra + rb - rc
        };
        let context = self.contexts[index];
        let predicted = (predicted + sign * context.c).clamp(0, p.maxval);
        let k = golomb_parameter(context.n, context.a)?;
        let mapped = self.bits.golomb(k, p.limit, p.qbpp)?;
        let mut error = if mapped & 1 == 0 { mapped >> 1 } else { -((mapped + 1) >> 1) };
        if p.near == 0 && k == 0 && 2 * context.b <= -context.n {
            error = -error - 1;
        }
        self.contexts[index] = update(context, error, &p);
        Ok(p.reconstruct(predicted + sign * error * (2 * p.near + 1)))
    }

    /// The length of a run of samples equal to Ra, at most `remaining` (T.87 A.7.1).
    fn run(&mut self, remaining: usize) -> Result<usize, ImagingError> {
        let mut length = 0;
        while self.bits.bit()? {
            let segment = 1usize << J[self.run_index];
            let count = segment.min(remaining - length);
            length += count;
            if count == segment {
                self.run_index = (self.run_index + 1).min(31);
            }
            if length == remaining {
                return Ok(length);
            }
        }
        length += self.bits.read(J[self.run_index])? as usize;
        if length >= remaining {
            return Err(malformed("JPEG-LS run overruns its line"));
        }
        Ok(length)
    }

    /// The sample that ends a run before the end of its line (T.87 A.7.2).
    fn interruption(&mut self, ra: i32, rb: i32) -> Result<i32, ImagingError> {
        let scale = 2 * self.params.near + 1;
        if (ra - rb).abs() <= self.params.near {
            let error = self.interruption_error(1)?;
            Ok(self.params.reconstruct(ra + error * scale))
        } else {
            let error = self.interruption_error(0)?;
            let sign = if rb > ra { 1 } else { -1 };
            Ok(self.params.reconstruct(rb + sign * error * scale))
        }
    }

    fn interruption_error(&mut self, kind: usize) -> Result<i32, ImagingError> {
        let context = self.run_contexts[kind];
        let kind_value = kind as i32;
        let k = golomb_parameter(context.n, context.a + (context.n >> 1) * kind_value)?;
        let limit = self.params.limit - J[self.run_index] as i32 - 1;
        let mapped = self.bits.golomb(k, limit, self.params.qbpp)?;
        let temp = mapped + kind_value;
        let map = temp & 1;
        let magnitude = (temp + map) / 2;
        let negative = (k != 0 || 2 * context.nn >= context.n) == (map == 1);
        let error = if negative { -magnitude } else { magnitude };
        let mut updated = context;
        if error < 0 {
            updated.nn += 1;
        }
        updated.a += (mapped + 1 - kind_value) >> 1;
        if updated.n == self.params.reset {
            updated.a >>= 1;
            updated.n >>= 1;
            updated.nn >>= 1;
        }
        updated.n += 1;
        self.run_contexts[kind] = updated;
        Ok(error)
    }
}

/// The least k with N·2^k ≥ A (T.87 A.5.1).
fn golomb_parameter(n: i32, a: i32) -> Result<u32, ImagingError> {
    let mut k = 0;
    while (i64::from(n) << k) < i64::from(a) {
        k += 1;
        if k > MAX_K {
            return Err(malformed("JPEG-LS context statistics out of range"));
        }
    }
    Ok(k)
}

/// Context update and bias correction (T.87 A.6).
fn update(mut context: Context, error: i32, p: &Params) -> Context {
    context.b += error * (2 * p.near + 1);
    context.a += error.abs();
    if context.n == p.reset {
        context.a >>= 1;
        context.b >>= 1;
        context.n >>= 1;
    }
    context.n += 1;
    if context.b <= -context.n {
        context.b += context.n;
        context.c = (context.c - 1).max(-128);
        if context.b <= -context.n {
            context.b = -context.n + 1;
        }
    } else if context.b > 0 {
        context.b -= context.n;
        context.c = (context.c + 1).min(127);
        if context.b > 0 {
            context.b = 0;
        }
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_thresholds_match_the_standard() {
        // T.87 Table C.3: 8-bit lossless uses 3, 7, 21; 16-bit uses 18, 67, 276.
        let p = Params::new(8, 0, &Preset::default()).expect("params");
        assert_eq!((p.t1, p.t2, p.t3, p.range, p.qbpp, p.limit), (3, 7, 21, 256, 8, 32));
        let p = Params::new(16, 0, &Preset::default()).expect("params");
        assert_eq!((p.t1, p.t2, p.t3, p.limit), (18, 67, 276, 64));
    }

    #[test]
    fn stuffed_bits_after_ff_are_skipped() {
        // 0xFF then 0x7F: eight ones, then the seven low bits of 0x7F (all ones).
        let data = [0xFF, 0x7F, 0xFF, 0xD9];
        let mut bits = BitReader::new(&data, 0);
        assert_eq!(bits.read(15).expect("bits"), 0x7FFF);
        assert!(bits.read(1).is_err(), "the EOI marker ends the scan");
        assert_eq!(bits.end_of_scan(), 2);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xF7, 0, 2]).is_err());
        let mut stream = vec![0xFF, 0xD8, 0xFF, 0xF7, 0, 11, 8, 0, 4, 0, 4, 1, 1, 0x11, 0];
        stream.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0, 0, 0xFF, 0xD9]);
        assert!(decode(&stream).is_err());
    }

    #[test]
    fn random_scans_never_panic() {
        // 16-bit and 8-bit three-component frames with random scan data, in every mode.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..300 {
            let (precision, components, interleave) = [(16u8, 1u8, 0u8), (8, 3, 1), (8, 3, 2), (12, 1, 0)][round % 4];
            let mut stream = vec![0xFF, 0xD8, 0xFF, 0xF7, 0, 8 + 3 * components, precision, 0, 40, 0, 30, components];
            for c in 1..=components {
                stream.extend([c, 0x11, 0]);
            }
            let scanned = if interleave == 0 { 1 } else { components };
            stream.extend([0xFF, 0xDA, 0, 6 + 2 * scanned, scanned]);
            for c in 1..=scanned {
                stream.extend([c, 0]);
            }
            stream.extend([(round % 3) as u8, interleave, 0]);
            for _ in 0..(round * 7 % 900) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                stream.push((seed >> 24) as u8);
            }
            stream.extend([0xFF, 0xD9]);
            let _ = decode(&stream);
        }
    }
}
