//! Transcoding a stored data set to a native little-endian syntax: Explicit VR Little
//! Endian, the default of WADO-RS (PS3.18 8.7.3.5), or Implicit VR Little Endian, the one
//! syntax every DICOM peer must accept. Data sets are re-encoded element by element, and
//! compressed pixel data is decoded frame by frame.
//!
//! Output goes to a `Write` as it is made, so an instance of any size streams. Large values
//! are copied from the file in chunks; only a compressed pixel data value is held whole.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use renkei_dicom::Syntax;
use renkei_dicom::syntax::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use renkei_dicom::tags::{PIXEL_DATA, tag};
use renkei_dicom::walk::{Node, NodeValue, tree_file};
use renkei_dicom::write::DatasetWriter;

use crate::{Frame, ImagingError, PixelModule, Samples, decode, frame_of_encapsulated, pixel_data_value};

/// Values up to this size are held while walking; larger ones are copied from the file.
const MAX_INLINE: u32 = 64 * 1024;
/// Encoded bytes gathered before they are written out.
const FLUSH_AT: usize = 256 * 1024;
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// The syntaxes [`transcode`] writes, in order of preference.
pub const TARGETS: [&str; 2] = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];

/// Writes the data set stored at `path` in `transfer_syntax` to `out` in `target`, one of
/// [`TARGETS`], decoding compressed pixel data.
pub fn transcode(path: &Path, transfer_syntax: &str, target: &str, out: &mut dyn Write) -> Result<(), ImagingError> {
    Transcoding::prepare(path, transfer_syntax, target)?.write(out)
}

/// A transcoding that has read the data set and decoded frame 1, and has written nothing:
/// what fails at once (an unknown syntax, an undecodable codestream) fails here, while the
/// caller can still choose another way.
pub struct Transcoding {
    path: PathBuf,
    transfer_syntax: String,
    syntax: Syntax,
    target: Syntax,
    nodes: Vec<Node>,
    decoded: Option<DecodedPixels>,
}

impl Transcoding {
    pub fn prepare(path: &Path, transfer_syntax: &str, target: &str) -> Result<Self, ImagingError> {
        let target = match target {
            EXPLICIT_VR_LE => Syntax::EXPLICIT_LE,
            IMPLICIT_VR_LE => Syntax::IMPLICIT_LE,
            other => return Err(ImagingError::Unsupported(format!("transcoding to {other}"))),
        };
        let syntax = Syntax::from_uid(transfer_syntax)
            .ok_or_else(|| ImagingError::Unsupported(format!("the private transfer syntax {transfer_syntax}")))?;
        let mut file = std::fs::File::open(path)?;
        let mut nodes = tree_file(&mut file, syntax, MAX_INLINE, &renkei_dicom::dictionary::implicit_vr)
            .map_err(|_| ImagingError::Malformed("stored data set"))?;
        if !syntax.explicit_vr {
            settle_implicit_vrs(&mut nodes);
        }
        let mut decoded = None;
        if crate::is_encapsulated(transfer_syntax) {
            let module = PixelModule::from_tree(&nodes, false)?;
            let value = pixel_data_value(path, transfer_syntax, &module)?;
            let first = decode_frame(transfer_syntax, &module, &value, 1)?;
            if first.len() as u64 * module.frames as u64 > u64::from(UNDEFINED_LENGTH - 1) {
                return Err(ImagingError::Unsupported("decoded pixel data over 4 GiB".into()));
            }
            describe_decoded(&mut nodes, transfer_syntax, &module);
            decoded = Some(DecodedPixels { module, value, first });
        }
        Ok(Self { path: path.to_owned(), transfer_syntax: transfer_syntax.to_owned(), syntax, target, nodes, decoded })
    }

    /// Writes the transcoded data set. A frame after the first that fails to decode stops it
    /// part-way: the caller's output is then incomplete.
    pub fn write(self, out: &mut dyn Write) -> Result<(), ImagingError> {
        let Transcoding { path, transfer_syntax, syntax, target, nodes, decoded } = self;
        let mut encoder = Encoder { path: &path, syntax, writer: DatasetWriter::new(target), out };
        for node in &nodes {
            match &decoded {
                Some(pixels) if node.tag == PIXEL_DATA => encoder.decoded_pixel_data(&transfer_syntax, pixels)?,
                _ => encoder.node(node)?,
            }
        }
        encoder.flush()
    }
}

/// Settles the VRs the dictionary leaves open in an implicit-VR data set: Pixel Data is OW
/// above 8 bits allocated, and "US or SS" attributes are SS when Pixel Representation is 1.
fn settle_implicit_vrs(nodes: &mut [Node]) {
    let module = PixelModule::from_tree(nodes, false).ok();
    let wide = module.as_ref().is_some_and(|m| m.bits_allocated > 8);
    let signed = module.as_ref().is_some_and(|m| m.signed);
    fn visit(nodes: &mut [Node], wide: bool, signed: bool, top: bool) {
        for node in nodes {
            if top && node.tag == PIXEL_DATA {
                node.vr = if wide { *b"OW" } else { *b"OB" };
            } else if signed && renkei_dicom::dictionary::follows_pixel_representation(node.tag) {
                node.vr = *b"SS";
            }
            if let NodeValue::Items(items) = &mut node.value {
                for item in items {
                    visit(item, wide, signed, false);
                }
            }
        }
    }
    visit(nodes, wide, signed, true);
}

struct DecodedPixels {
    module: PixelModule,
    /// The encapsulated pixel data value.
    value: Vec<u8>,
    /// Frame 1, native.
    first: Vec<u8>,
}

fn decode_frame(
    transfer_syntax: &str,
    module: &PixelModule,
    value: &[u8],
    number: u32,
) -> Result<Vec<u8>, ImagingError> {
    let frame = Frame { bytes: frame_of_encapsulated(value, module, number)?, encapsulated: true };
    native_bytes(&decode(&frame, transfer_syntax, module)?, module)
}

/// The native bytes of decoded samples, laid out as `module` says (little endian, pixel by
/// pixel), for a frame served uncompressed.
pub fn native_bytes(samples: &Samples, module: &PixelModule) -> Result<Vec<u8>, ImagingError> {
    let expected = module.rows as usize * module.columns as usize * module.samples_per_pixel.max(1) as usize;
    if samples.values.len() != expected {
        return Err(ImagingError::Malformed("decoded frame does not match the image pixel module"));
    }
    Ok(match module.bits_allocated {
        8 => samples.values.iter().map(|v| *v as u8).collect(),
        16 => samples.values.iter().flat_map(|v| (*v as u16).to_le_bytes()).collect(),
        32 => samples.values.iter().flat_map(|v| (*v as u32).to_le_bytes()).collect(),
        other => return Err(ImagingError::Unsupported(format!("{other}-bit samples"))),
    })
}

/// Rewrites the attributes that describe pixel data so they fit the decoded frames:
/// colour comes out of the JPEG and JPEG 2000 decoders as RGB, and always pixel by pixel;
/// lossy compression stays on record (PS3.3 C.7.6.1.1.5); what only encapsulated data may
/// carry goes.
fn describe_decoded(nodes: &mut Vec<Node>, transfer_syntax: &str, module: &PixelModule) {
    let becomes_rgb = module.samples_per_pixel == 3
        && (matches!(transfer_syntax, "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51")
            || matches!(module.photometric.as_str(), "YBR_RCT" | "YBR_ICT"));
    if becomes_rgb {
        set(nodes, tag(0x0028, 0x0004), *b"CS", b"RGB ".to_vec());
    }
    if module.samples_per_pixel > 1 {
        set(nodes, tag(0x0028, 0x0006), *b"US", 0u16.to_le_bytes().to_vec());
    }
    let lossy = matches!(
        transfer_syntax,
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.81" | "1.2.840.10008.1.2.4.91"
    );
    if lossy {
        set(nodes, tag(0x0028, 0x2110), *b"CS", b"01".to_vec());
    }
    // The extended offset table describes encapsulated fragments only (PS3.3 C.7.6.3), and
    // an icon inside an encapsulated data set may be encapsulated too: neither survives.
    let dropped = [tag(0x7FE0, 0x0001), tag(0x7FE0, 0x0002), tag(0x7FE0, 0x0003), tag(0x0088, 0x0200)];
    nodes.retain(|node| !dropped.contains(&node.tag));
}

/// Sets a top-level element, keeping tag order.
fn set(nodes: &mut Vec<Node>, t: u32, vr: [u8; 2], value: Vec<u8>) {
    let node = Node { tag: t, vr, value: NodeValue::Bytes(value) };
    match nodes.binary_search_by_key(&t, |n| n.tag) {
        Ok(at) => nodes[at] = node,
        Err(at) => nodes.insert(at, node),
    }
}

struct Encoder<'a> {
    path: &'a Path,
    /// The stored data set's syntax.
    syntax: Syntax,
    writer: DatasetWriter,
    out: &'a mut dyn Write,
}

impl Encoder<'_> {
    fn node(&mut self, node: &Node) -> Result<(), ImagingError> {
        // Group lengths would be wrong once re-encoded (and are retired); trailing padding is
        // not part of the data.
        if node.tag & 0xFFFF == 0 || node.tag == tag(0xFFFC, 0xFFFC) {
            return Ok(());
        }
        match &node.value {
            NodeValue::Bytes(bytes) => {
                let mut value = bytes.clone();
                if self.syntax.big_endian {
                    swap_to_little_endian(&mut value, node.vr);
                }
                self.writer.element_header(node.tag, node.vr, value.len() as u32).raw(&value);
            }
            NodeValue::Bulk { offset, length } => {
                self.writer.element_header(node.tag, node.vr, *length as u32);
                self.copy(*offset, *length, node.vr)?;
            }
            NodeValue::Items(items) => {
                self.writer.element_header(node.tag, *b"SQ", UNDEFINED_LENGTH);
                for item in items {
                    self.writer.begin_item();
                    for node in item {
                        self.node(node)?;
                    }
                    self.writer.end_item();
                }
                self.writer.end_sequence();
            }
        }
        if self.writer.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Copies a large value from the stored file, in chunks.
    fn copy(&mut self, offset: u64, length: u64, vr: [u8; 2]) -> Result<(), ImagingError> {
        self.flush()?;
        let mut source = crate::open_at(self.path, self.syntax, offset)?.take(length);
        // A multiple of every value width, so no value straddles two chunks.
        let mut chunk = vec![0u8; 1 << 20];
        let mut copied = 0;
        loop {
            let read = read_full(&mut source, &mut chunk)?;
            if read == 0 {
                break;
            }
            if self.syntax.big_endian {
                swap_to_little_endian(&mut chunk[..read], vr);
            }
            self.out.write_all(&chunk[..read])?;
            copied += read as u64;
        }
        if copied != length {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        Ok(())
    }

    fn decoded_pixel_data(&mut self, transfer_syntax: &str, pixels: &DecodedPixels) -> Result<(), ImagingError> {
        let module = &pixels.module;
        let total = pixels.first.len() * module.frames as usize;
        let vr = if module.bits_allocated > 8 { *b"OW" } else { *b"OB" };
        self.writer.element_header(PIXEL_DATA, vr, (total + total % 2) as u32);
        self.flush()?;
        self.out.write_all(&pixels.first)?;
        for number in 2..=module.frames {
            self.out.write_all(&decode_frame(transfer_syntax, module, &pixels.value, number)?)?;
        }
        if total % 2 == 1 {
            self.out.write_all(&[0])?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ImagingError> {
        if !self.writer.is_empty() {
            self.out.write_all(&self.writer.take())?;
        }
        Ok(())
    }
}

fn read_full(source: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

/// Big-endian values of a binary VR to little endian, in place.
fn swap_to_little_endian(value: &mut [u8], vr: [u8; 2]) {
    let width = match &vr {
        b"US" | b"SS" | b"OW" | b"AT" => 2,
        b"UL" | b"SL" | b"FL" | b"OF" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => return,
    };
    for chunk in value.chunks_exact_mut(width) {
        chunk.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_values_swap_by_their_vr() {
        let mut us = vec![0x01, 0x02, 0x03, 0x04];
        swap_to_little_endian(&mut us, *b"US");
        assert_eq!(us, [0x02, 0x01, 0x04, 0x03]);
        let mut fd = (1.5f64).to_be_bytes().to_vec();
        swap_to_little_endian(&mut fd, *b"FD");
        assert_eq!(fd, (1.5f64).to_le_bytes());
        let mut text = b"AB".to_vec();
        swap_to_little_endian(&mut text, *b"CS");
        assert_eq!(text, b"AB");
    }

    #[test]
    fn implicit_vr_data_sets_get_the_vrs_their_values_need() {
        // A signed CT in Implicit VR Little Endian, with a Pixel Padding Value of -2000 and a
        // DS value longer than a 2-byte length can say.
        let mut writer = DatasetWriter::new(Syntax::IMPLICIT_LE);
        writer
            .u16_element(tag(0x0028, 0x0002), 1)
            .u16_element(tag(0x0028, 0x0010), 2)
            .u16_element(tag(0x0028, 0x0011), 2)
            .u16_element(tag(0x0028, 0x0100), 16)
            .u16_element(tag(0x0028, 0x0103), 1)
            .element(tag(0x0028, 0x0120), *b"SS", &(-2000i16).to_le_bytes())
            .element(tag(0x3006, 0x0050), *b"DS", &"1.5\\".repeat(20_000).into_bytes())
            .element(PIXEL_DATA, *b"OW", &[0; 8]);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("implicit");
        std::fs::write(&path, writer.into_bytes()).expect("write");
        let mut out = Vec::new();
        transcode(&path, IMPLICIT_VR_LE, EXPLICIT_VR_LE, &mut out).expect("transcodes");
        let vrs: Vec<(u32, [u8; 2])> = renkei_dicom::walk::tree(
            &mut renkei_dicom::walk::SeekSource::new(std::io::Cursor::new(out)).expect("source"),
            Syntax::EXPLICIT_LE,
            1024,
            &|_| *b"UN",
        )
        .expect("a valid Explicit VR data set")
        .iter()
        .map(|node| (node.tag, node.vr))
        .collect();
        assert!(vrs.contains(&(tag(0x0028, 0x0120), *b"SS")), "signed, so SS: {vrs:?}");
        assert!(vrs.contains(&(tag(0x3006, 0x0050), *b"UN")), "80,000 bytes of DS go as UN: {vrs:?}");
        assert!(vrs.contains(&(PIXEL_DATA, *b"OW")));
    }

    #[test]
    fn attributes_are_set_in_tag_order() {
        let mut nodes = vec![
            Node { tag: tag(0x0028, 0x0002), vr: *b"US", value: NodeValue::Bytes(vec![3, 0]) },
            Node { tag: tag(0x0028, 0x0010), vr: *b"US", value: NodeValue::Bytes(vec![1, 0]) },
        ];
        set(&mut nodes, tag(0x0028, 0x0006), *b"US", vec![0, 0]);
        set(&mut nodes, tag(0x0028, 0x0002), *b"US", vec![1, 0]);
        let tags: Vec<u32> = nodes.iter().map(|n| n.tag).collect();
        assert_eq!(tags, [tag(0x0028, 0x0002), tag(0x0028, 0x0006), tag(0x0028, 0x0010)]);
        assert_eq!(nodes[0].value, NodeValue::Bytes(vec![1, 0]));
    }
}
