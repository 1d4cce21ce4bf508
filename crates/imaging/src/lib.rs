//! Pixel data for viewers: frames out of stored objects, decoded and rendered.
//!
//! - [`PixelModule`]: the Image Pixel module of an instance, read from the walker's tree.
//! - [`read_range`]: bytes of a stored data set by position (inflating deflated ones).
//! - [`frame`]: one frame, as stored: native bytes, or the compressed fragment(s).
//! - [`decode`]: native, RLE Lossless, the JPEG family (baseline, extended 8-bit, lossless),
//!   JPEG-LS ([`jpegls`], our own decoder) and JPEG 2000 (OpenJPEG's Rust port) to samples.
//! - [`transcode`]: a stored data set re-encoded as Explicit VR Little Endian, pixels decoded.
//! - [`render`]: modality rescale, windowing (LINEAR, LINEAR_EXACT or SIGMOID, PS3.3
//!   C.11.2.1.2-3), MONOCHROME1 inversion,
//!   optional downscaling for thumbnails, then PNG or JPEG.
//!
//! All of it is CPU or blocking file work: callers run it off the async runtime.

pub mod jpegls;
pub mod transcode;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use renkei_dicom::Syntax;
use renkei_dicom::tags::tag;
use renkei_dicom::walk::{Node, NodeValue};

/// Why pixel data could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("the instance has no pixel data")]
    NoPixelData,
    #[error("the instance has no frame {0}")]
    NoSuchFrame(u32),
    #[error("{0} pixel data cannot be decoded yet")]
    Unsupported(String),
    #[error("pixel data is malformed: {0}")]
    Malformed(&'static str),
    #[error("reading pixel data failed")]
    Io(#[from] std::io::Error),
}

/// Where the pixel data value is in the data set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PixelLocation {
    Inline(Vec<u8>),
    At { offset: u64, length: u64 },
}

/// A VOI LUT function (PS3.3 C.11.2.1.2 and C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

impl WindowFunction {
    /// From a VOI LUT Function value or a WADO-RS `window` function name.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "LINEAR" => Some(Self::Linear),
            "LINEAR_EXACT" => Some(Self::LinearExact),
            "SIGMOID" => Some(Self::Sigmoid),
            _ => None,
        }
    }
}

/// A window: center and width through a function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: WindowFunction,
}

impl Window {
    /// A width the function can use: at least 1 for LINEAR, above 0 for the others.
    pub fn new(center: f64, width: f64, function: WindowFunction) -> Option<Self> {
        let usable = match function {
            WindowFunction::Linear => width >= 1.0,
            WindowFunction::LinearExact | WindowFunction::Sigmoid => width > 0.0,
        };
        usable.then_some(Self { center, width, function })
    }

    /// The display value, 0 to 255, of a modality value `x`.
    fn apply(&self, x: f64) -> f64 {
        let (c, w) = (self.center, self.width);
        let y = match self.function {
            // C.11.2.1.2.1
            WindowFunction::Linear => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0).max(1.0) + 0.5
                }
            }
            // C.11.2.1.3.2
            WindowFunction::LinearExact => {
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    (x - c) / w + 0.5
                }
            }
            // C.11.2.1.3.1
            WindowFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        };
        (y * 255.0).clamp(0.0, 255.0)
    }
}

/// The attributes needed to find, decode and show frames.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelModule {
    pub rows: u16,
    pub columns: u16,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub signed: bool,
    pub photometric: String,
    pub planar_configuration: u16,
    pub frames: u32,
    pub rescale: (f64, f64),
    /// The object's first window and its VOI LUT Function, if it has them.
    pub window: Option<Window>,
    location: PixelLocation,
}

fn bytes(nodes: &[Node], t: u32) -> Option<&[u8]> {
    nodes.iter().find(|n| n.tag == t).and_then(|n| match &n.value {
        NodeValue::Bytes(bytes) => Some(bytes.as_slice()),
        _ => None,
    })
}

fn us(nodes: &[Node], t: u32, big_endian: bool) -> Option<u16> {
    let b = bytes(nodes, t)?;
    let pair = [*b.first()?, *b.get(1)?];
    Some(if big_endian { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) })
}

/// The first value of a decimal or integer string.
fn number(nodes: &[Node], t: u32) -> Option<f64> {
    let text = renkei_dicom::text::ascii(bytes(nodes, t)?);
    text.split('\\').next()?.trim().parse().ok()
}

impl PixelModule {
    /// Reads the Image Pixel module from the top level of an instance's tree.
    pub fn from_tree(nodes: &[Node], big_endian: bool) -> Result<Self, ImagingError> {
        let pixel = nodes.iter().find(|n| n.tag == renkei_dicom::tags::PIXEL_DATA).ok_or(ImagingError::NoPixelData)?;
        let location = match &pixel.value {
            NodeValue::Bytes(bytes) => PixelLocation::Inline(bytes.clone()),
            NodeValue::Bulk { offset, length } => PixelLocation::At { offset: *offset, length: *length },
            NodeValue::Items(_) => return Err(ImagingError::Malformed("pixel data is a sequence")),
        };
        let required = |t| us(nodes, t, big_endian).ok_or(ImagingError::Malformed("image pixel module incomplete"));
        let function = bytes(nodes, tag(0x0028, 0x1056))
            .and_then(|b| WindowFunction::parse(&renkei_dicom::text::ascii(b)))
            .unwrap_or(WindowFunction::Linear);
        let window = match (number(nodes, tag(0x0028, 0x1050)), number(nodes, tag(0x0028, 0x1051))) {
            (Some(center), Some(width)) => Window::new(center, width, function),
            _ => None,
        };
        Ok(Self {
            rows: required(tag(0x0028, 0x0010))?,
            columns: required(tag(0x0028, 0x0011))?,
            samples_per_pixel: us(nodes, tag(0x0028, 0x0002), big_endian).unwrap_or(1),
            bits_allocated: required(tag(0x0028, 0x0100))?,
            signed: us(nodes, tag(0x0028, 0x0103), big_endian) == Some(1),
            photometric: bytes(nodes, tag(0x0028, 0x0004)).map(renkei_dicom::text::ascii).unwrap_or_default(),
            planar_configuration: us(nodes, tag(0x0028, 0x0006), big_endian).unwrap_or(0),
            frames: number(nodes, tag(0x0028, 0x0008)).map_or(1, |n| n.max(1.0) as u32),
            rescale: (
                number(nodes, tag(0x0028, 0x1053)).unwrap_or(1.0),
                number(nodes, tag(0x0028, 0x1052)).unwrap_or(0.0),
            ),
            window,
            location,
        })
    }

    fn frame_size(&self) -> usize {
        self.rows as usize
            * self.columns as usize
            * self.samples_per_pixel as usize
            * (self.bits_allocated as usize).div_ceil(8)
    }
}

/// A reader of a stored data set from `offset` (a position in the inflated stream for
/// deflated syntaxes).
pub fn open_at(path: &Path, syntax: Syntax, offset: u64) -> Result<Box<dyn Read>, std::io::Error> {
    let file = std::fs::File::open(path)?;
    if syntax.deflated {
        let mut inflater = flate2::read::DeflateDecoder::new(std::io::BufReader::new(file));
        std::io::copy(&mut (&mut inflater).take(offset), &mut std::io::sink())?;
        Ok(Box::new(inflater))
    } else {
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(file))
    }
}

/// `length` bytes of a stored data set from `offset`.
pub fn read_range(path: &Path, syntax: Syntax, offset: u64, length: u64) -> Result<Vec<u8>, std::io::Error> {
    let mut bytes = Vec::with_capacity(length.min(1 << 30) as usize);
    open_at(path, syntax, offset)?.take(length).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != length {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

/// One frame as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Whether `bytes` is a compressed codestream rather than native samples.
    pub encapsulated: bool,
}

/// Frame `number` (1-based) of an instance stored at `path` in `transfer_syntax`.
pub fn frame(path: &Path, transfer_syntax: &str, module: &PixelModule, number: u32) -> Result<Frame, ImagingError> {
    if number == 0 || number > module.frames {
        return Err(ImagingError::NoSuchFrame(number));
    }
    if is_encapsulated(transfer_syntax) {
        let value = pixel_data_value(path, transfer_syntax, module)?;
        return Ok(Frame { bytes: frame_of_encapsulated(&value, module, number)?, encapsulated: true });
    }
    let size = module.frame_size();
    let start = size * (number as usize - 1);
    let short = || ImagingError::Malformed("pixel data shorter than its frames");
    let bytes = match &module.location {
        PixelLocation::Inline(bytes) => bytes.get(start..start + size).ok_or_else(short)?.to_vec(),
        PixelLocation::At { offset, length } => {
            if (start + size) as u64 > *length {
                return Err(short());
            }
            let syntax = Syntax::from_uid(transfer_syntax).unwrap_or(Syntax::EXPLICIT_LE);
            read_range(path, syntax, offset + start as u64, size as u64)?
        }
    };
    Ok(Frame { bytes, encapsulated: false })
}

/// The whole pixel data value, as stored: for taking every frame of an encapsulated one.
pub fn pixel_data_value(path: &Path, transfer_syntax: &str, module: &PixelModule) -> Result<Vec<u8>, ImagingError> {
    match &module.location {
        PixelLocation::Inline(bytes) => Ok(bytes.clone()),
        PixelLocation::At { offset, length } => {
            let syntax = Syntax::from_uid(transfer_syntax).unwrap_or(Syntax::EXPLICIT_LE);
            Ok(read_range(path, syntax, *offset, *length)?)
        }
    }
}

/// Frame `number` (1-based) of an encapsulated pixel data value: its fragment(s).
pub fn frame_of_encapsulated(value: &[u8], module: &PixelModule, number: u32) -> Result<Vec<u8>, ImagingError> {
    let fragments = fragments(value)?;
    let (offset_table, fragments) = fragments.split_first().ok_or(ImagingError::Malformed("no offset table"))?;
    if fragments.len() == module.frames as usize {
        Ok(fragments[number as usize - 1].to_vec())
    } else if module.frames == 1 {
        Ok(fragments.concat())
    } else if !offset_table.is_empty() {
        frame_from_offset_table(offset_table, fragments, number)
    } else {
        Err(ImagingError::Malformed("cannot tell the frames' fragments apart"))
    }
}

pub fn is_encapsulated(transfer_syntax: &str) -> bool {
    !matches!(
        transfer_syntax,
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.2"
    )
}

fn u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The items of an encapsulated pixel data value (offset table first).
fn fragments(bytes: &[u8]) -> Result<Vec<&[u8]>, ImagingError> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let item = u32_le(bytes, at).ok_or(ImagingError::Malformed("fragment header"))?;
        let length = u32_le(bytes, at + 4).ok_or(ImagingError::Malformed("fragment header"))? as usize;
        if item == 0xE0DD_FFFE {
            break;
        }
        if item != 0xE000_FFFE {
            return Err(ImagingError::Malformed("expected a fragment item"));
        }
        let value =
            bytes.get(at + 8..at + 8 + length).ok_or(ImagingError::Malformed("fragment overruns the pixel data"))?;
        found.push(value);
        at += 8 + length;
    }
    Ok(found)
}

fn frame_from_offset_table(table: &[u8], fragments: &[&[u8]], number: u32) -> Result<Vec<u8>, ImagingError> {
    let offsets: Vec<usize> = (0..table.len() / 4).filter_map(|i| u32_le(table, 4 * i)).map(|o| o as usize).collect();
    let start = *offsets.get(number as usize - 1).ok_or(ImagingError::NoSuchFrame(number))?;
    let end = offsets.get(number as usize).copied().unwrap_or(usize::MAX);
    let mut position = 0;
    let mut bytes = Vec::new();
    for fragment in fragments {
        if position >= start && position < end {
            bytes.extend_from_slice(fragment);
        }
        position += 8 + fragment.len();
    }
    Ok(bytes)
}

/// Decoded samples of one frame, in the object's photometric interpretation (or RGB for
/// decoded colour JPEG).
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    pub columns: u32,
    pub rows: u32,
    /// 1 (grey) or 3 (colour, interleaved).
    pub channels: u32,
    pub values: Vec<i32>,
}

/// Whether [`decode`] handles pixel data stored in `transfer_syntax` (kept beside it so the
/// two stay in step).
pub fn can_decode(transfer_syntax: &str) -> bool {
    !is_encapsulated(transfer_syntax)
        || matches!(
            transfer_syntax,
            "1.2.840.10008.1.2.5"
                | "1.2.840.10008.1.2.4.50"
                | "1.2.840.10008.1.2.4.51"
                | "1.2.840.10008.1.2.4.57"
                | "1.2.840.10008.1.2.4.70"
                | "1.2.840.10008.1.2.4.80"
                | "1.2.840.10008.1.2.4.81"
                | "1.2.840.10008.1.2.4.90"
                | "1.2.840.10008.1.2.4.91"
        )
}

/// Decodes a frame.
pub fn decode(frame: &Frame, transfer_syntax: &str, module: &PixelModule) -> Result<Samples, ImagingError> {
    let (columns, rows) = (module.columns as u32, module.rows as u32);
    let channels = module.samples_per_pixel.max(1) as u32;
    if !frame.encapsulated {
        let big_endian = transfer_syntax == renkei_dicom::syntax::EXPLICIT_VR_BE;
        let values = native_samples(&frame.bytes, module, big_endian);
        return Ok(interleaved(Samples { columns, rows, channels, values }, module.planar_configuration));
    }
    match transfer_syntax {
        "1.2.840.10008.1.2.5" => {
            let values = rle(&frame.bytes, module)?;
            Ok(Samples { columns, rows, channels, values })
        }
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
            let mut decoder = jpeg_decoder::Decoder::new(frame.bytes.as_slice());
            let pixels = decoder.decode().map_err(|_| ImagingError::Malformed("JPEG codestream"))?;
            let info = decoder.info().ok_or(ImagingError::Malformed("JPEG codestream"))?;
            let (channels, values) = match info.pixel_format {
                jpeg_decoder::PixelFormat::L8 => (1, pixels.iter().map(|v| *v as i32).collect()),
                // jpeg-decoder writes 16-bit samples in native byte order.
                jpeg_decoder::PixelFormat::L16 => {
                    (1, pixels.chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]]) as i32).collect())
                }
                jpeg_decoder::PixelFormat::RGB24 => (3, pixels.iter().map(|v| *v as i32).collect()),
                jpeg_decoder::PixelFormat::CMYK32 => return Err(ImagingError::Unsupported("CMYK JPEG".into())),
            };
            let values = signed_from(values, jpeg_precision(&frame.bytes).unwrap_or(16), module.signed);
            Ok(Samples { columns: info.width as u32, rows: info.height as u32, channels, values })
        }
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => {
            let image = jpegls::decode(&frame.bytes)?;
            let values = signed_from(image.samples, image.precision, module.signed);
            Ok(Samples { columns: image.width, rows: image.height, channels: image.components, values })
        }
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => {
            let (samples, precision) = jpeg_2000(&frame.bytes)?;
            Ok(Samples { values: signed_from(samples.values, precision, module.signed), ..samples })
        }
        other => Err(ImagingError::Unsupported(other.to_owned())),
    }
}

/// Codecs hand back unsigned P-bit samples; a signed object's are two's complement in P bits.
fn signed_from(values: Vec<i32>, precision: u8, signed: bool) -> Vec<i32> {
    if !signed || !(2..32).contains(&precision) {
        return values;
    }
    let half = 1i32 << (precision - 1);
    values.into_iter().map(|v| if v >= half { v - 2 * half } else { v }).collect()
}

/// The sample precision in a JPEG stream's frame header.
fn jpeg_precision(bytes: &[u8]) -> Option<u8> {
    let mut at = 2;
    loop {
        let (marker, length) = (*bytes.get(at + 1)?, u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]));
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return bytes.get(at + 4).copied();
        }
        at += 2 + length as usize;
    }
}

/// JPEG 2000, Part 1, and the samples' precision. OpenJPEG applies the inverse colour
/// transform itself, so colour comes back as RGB.
fn jpeg_2000(bytes: &[u8]) -> Result<(Samples, u8), ImagingError> {
    let image = jpeg2k::Image::from_bytes(bytes).map_err(|_| ImagingError::Malformed("JPEG 2000 codestream"))?;
    let components = image.components();
    let (columns, rows) = match components {
        [only] => (only.width(), only.height()),
        [first, _, _] if components.iter().all(|c| (c.width(), c.height()) == (first.width(), first.height())) => {
            (first.width(), first.height())
        }
        _ => return Err(ImagingError::Unsupported("JPEG 2000 other than one or three full-size components".into())),
    };
    let planes: Vec<&[i32]> = components.iter().map(|c| c.data()).collect();
    let pixels = (columns * rows) as usize;
    if planes.iter().any(|plane| plane.len() < pixels) {
        return Err(ImagingError::Malformed("JPEG 2000 component shorter than its image"));
    }
    let values = (0..pixels).flat_map(|i| planes.iter().map(move |plane| plane[i])).collect();
    let precision = components[0].precision() as u8;
    Ok((Samples { columns, rows, channels: planes.len() as u32, values }, precision))
}

fn native_samples(bytes: &[u8], module: &PixelModule, big_endian: bool) -> Vec<i32> {
    match (module.bits_allocated, module.signed) {
        (8, false) => bytes.iter().map(|v| *v as i32).collect(),
        (8, true) => bytes.iter().map(|v| *v as i8 as i32).collect(),
        (16, signed) => bytes
            .chunks_exact(2)
            .map(|b| {
                let raw = if big_endian { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) };
                if signed { raw as i16 as i32 } else { raw as i32 }
            })
            .collect(),
        (_, signed) => bytes
            .chunks_exact(4)
            .map(|b| {
                let b = [b[0], b[1], b[2], b[3]];
                let raw = if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
                if signed { raw as i32 } else { raw.min(i32::MAX as u32) as i32 }
            })
            .collect(),
    }
}

/// Colour planes (planar configuration 1) to interleaved pixels.
fn interleaved(samples: Samples, planar_configuration: u16) -> Samples {
    if samples.channels != 3 || planar_configuration != 1 {
        return samples;
    }
    let plane = (samples.columns * samples.rows) as usize;
    let mut values = Vec::with_capacity(samples.values.len());
    for i in 0..plane {
        for c in 0..3 {
            values.push(samples.values.get(c * plane + i).copied().unwrap_or(0));
        }
    }
    Samples { values, ..samples }
}

/// RLE Lossless (PS3.5 Annex G): one PackBits segment per byte plane, most significant first.
fn rle(bytes: &[u8], module: &PixelModule) -> Result<Vec<i32>, ImagingError> {
    let malformed = || ImagingError::Malformed("RLE frame");
    let header: Vec<u32> = bytes
        .get(..64)
        .ok_or_else(malformed)?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let segments = header[0] as usize;
    let pixels = module.rows as usize * module.columns as usize;
    let bytes_per_sample = (module.bits_allocated as usize).div_ceil(8);
    if segments == 0 || segments > 15 || segments != module.samples_per_pixel as usize * bytes_per_sample {
        return Err(malformed());
    }
    let mut planes = Vec::with_capacity(segments);
    for s in 0..segments {
        let start = header[1 + s] as usize;
        let end = if s + 1 < segments { header[2 + s] as usize } else { bytes.len() };
        planes.push(unpack_bits(bytes.get(start..end).ok_or_else(malformed)?, pixels));
    }
    let samples = module.samples_per_pixel as usize;
    let mut values = Vec::with_capacity(pixels * samples);
    for pixel in 0..pixels {
        for sample in 0..samples {
            let planes = &planes[sample * bytes_per_sample..(sample + 1) * bytes_per_sample];
            let raw = planes.iter().fold(0u32, |raw, plane| (raw << 8) | plane[pixel] as u32);
            values.push(match (bytes_per_sample, module.signed) {
                (1, true) => raw as u8 as i8 as i32,
                (2, true) => raw as u16 as i16 as i32,
                _ => raw as i32,
            });
        }
    }
    Ok(values)
}

fn unpack_bits(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut i = 0;
    while i < data.len() && out.len() < size {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            let count = n as usize + 1;
            out.extend_from_slice(&data[i..(i + count).min(data.len())]);
            i += count;
        } else if n != -128 {
            let count = 1 - n as isize;
            if let Some(&value) = data.get(i) {
                out.extend(std::iter::repeat_n(value, count as usize));
            }
            i += 1;
        }
    }
    out.resize(size, 0);
    out
}

/// The image format of a rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

/// How to render a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rendering {
    /// The window, else the object's, else the frame's range.
    pub window: Option<Window>,
    /// The box the image is scaled into, keeping its aspect ratio.
    pub fit: Option<(u32, u32)>,
    /// Only shrink to fit, never enlarge (thumbnails).
    pub shrink_only: bool,
    pub format: ImageFormat,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
}

impl Rendering {
    pub fn new(format: ImageFormat) -> Self {
        Self { window: None, fit: None, shrink_only: false, format, quality: 90 }
    }
}

/// Renders samples to an image: grey through the modality rescale and the window, colour as
/// it is, then scaled and encoded as `rendering` says.
pub fn render(samples: &Samples, module: &PixelModule, rendering: &Rendering) -> Result<Vec<u8>, ImagingError> {
    let (width, height, channels) = (samples.columns, samples.rows, samples.channels);
    let mut pixels: Vec<u8> = if channels == 1 {
        let (slope, intercept) = module.rescale;
        let values: Vec<f64> = samples.values.iter().map(|v| *v as f64 * slope + intercept).collect();
        let window = rendering.window.or(module.window).unwrap_or_else(|| {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Window { center: (min + max) / 2.0, width: (max - min).max(1.0), function: WindowFunction::Linear }
        });
        let invert = module.photometric == "MONOCHROME1";
        values
            .iter()
            .map(|x| {
                let y = window.apply(*x) as u8;
                if invert { 255 - y } else { y }
            })
            .collect()
    } else {
        samples.values.iter().map(|v| (*v).clamp(0, 255) as u8).collect()
    };
    let (mut out_width, mut out_height) = (width, height);
    let scale = rendering
        .fit
        .map(|(box_width, box_height)| (box_width as f64 / width as f64).min(box_height as f64 / height as f64))
        .filter(|scale| *scale < 1.0 || (!rendering.shrink_only && *scale > 1.0));
    if let Some(scale) = scale {
        // Nearest neighbour: a preview, not a diagnostic resampling.
        out_width = ((width as f64 * scale).round() as u32).max(1);
        out_height = ((height as f64 * scale).round() as u32).max(1);
        let mut scaled = Vec::with_capacity((out_width * out_height * channels) as usize);
        for y in 0..out_height {
            let sy = (y as f64 / scale) as u32;
            for x in 0..out_width {
                let sx = (x as f64 / scale) as u32;
                let at = ((sy.min(height - 1) * width + sx.min(width - 1)) * channels) as usize;
                scaled.extend_from_slice(&pixels[at..at + channels as usize]);
            }
        }
        pixels = scaled;
    }
    let mut out = Vec::new();
    match rendering.format {
        ImageFormat::Png => {
            let mut encoder = png::Encoder::new(&mut out, out_width, out_height);
            encoder.set_color(if channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| ImagingError::Io(std::io::Error::other(e)))?;
            writer.write_image_data(&pixels).map_err(|e| ImagingError::Io(std::io::Error::other(e)))?;
        }
        ImageFormat::Jpeg => {
            let color = if channels == 1 { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
            let encoder = jpeg_encoder::Encoder::new(&mut out, rendering.quality.clamp(1, 100));
            encoder
                .encode(&pixels, out_width as u16, out_height as u16, color)
                .map_err(|e| ImagingError::Io(std::io::Error::other(e)))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(rows: u16, columns: u16, bits: u16) -> PixelModule {
        PixelModule {
            rows,
            columns,
            samples_per_pixel: 1,
            bits_allocated: bits,
            signed: false,
            photometric: "MONOCHROME2".into(),
            planar_configuration: 0,
            frames: 1,
            rescale: (1.0, 0.0),
            window: None,
            location: PixelLocation::Inline(Vec::new()),
        }
    }

    #[test]
    fn windowing_follows_the_linear_function() {
        let m = module(1, 4, 16);
        let samples = Samples { columns: 4, rows: 1, channels: 1, values: vec![0, 40, 60, 100] };
        let rendering =
            Rendering { window: Window::new(50.0, 21.0, WindowFunction::Linear), ..Rendering::new(ImageFormat::Png) };
        let png = render(&samples, &m, &rendering).expect("render");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("png");
        let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut pixels).expect("frame");
        // Center 50, width 21: below 39.5 is black, above 59.5 white, 40 is ((40 - 49.5) / 20 + 0.5) * 255.
        assert_eq!(pixels, vec![0, 6, 255, 255]);
    }

    #[test]
    fn linear_exact_and_sigmoid_follow_their_formulas() {
        let exact = Window::new(50.0, 20.0, WindowFunction::LinearExact).expect("window");
        assert_eq!([exact.apply(40.0), exact.apply(45.0), exact.apply(60.5)], [0.0, 63.75, 255.0]);
        let sigmoid = Window::new(50.0, 20.0, WindowFunction::Sigmoid).expect("window");
        assert_eq!(sigmoid.apply(50.0), 127.5, "the center is mid-grey");
        assert!((sigmoid.apply(60.0) - 255.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-9);
        assert!(Window::new(50.0, 0.5, WindowFunction::Linear).is_none(), "LINEAR needs a width of 1 or more");
        assert!(Window::new(50.0, 0.5, WindowFunction::Sigmoid).is_some());
        assert_eq!(WindowFunction::parse("linear-exact"), Some(WindowFunction::LinearExact));
        assert_eq!(WindowFunction::parse("SIGMOID "), Some(WindowFunction::Sigmoid));
    }

    #[test]
    fn rle_round_trips_against_packbits() {
        // Two byte planes of a 2x2 16-bit image: values 0x0102, 0x0304, 0x0506, 0x0708.
        let high = [3u8, 1, 3, 5, 7];
        let low = [3u8, 2, 4, 6, 8];
        let mut frame = vec![0u8; 64];
        frame[..4].copy_from_slice(&2u32.to_le_bytes());
        frame[4..8].copy_from_slice(&64u32.to_le_bytes());
        frame[8..12].copy_from_slice(&(64 + high.len() as u32).to_le_bytes());
        frame.extend_from_slice(&high);
        frame.extend_from_slice(&low);
        let m = module(2, 2, 16);
        assert_eq!(rle(&frame, &m).expect("decodes"), vec![0x0102, 0x0304, 0x0506, 0x0708]);
    }
}
