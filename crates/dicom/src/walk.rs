//! A structural walker over an encoded dataset.
//!
//! It checks that every element header, sequence, item and fragment is well formed and that
//! the dataset ends exactly at the end of its input, without loading values into memory:
//! value bytes are skipped (by seeking when the input allows it). Top-level elements the
//! caller asks for are captured on the way. This is how ingest validates a received object
//! (a truncated or garbled one is refused before anything is indexed) and extracts its index
//! record in the same pass, and how small datasets such as query identifiers are read.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use crate::syntax::Syntax;
use crate::tags::{ITEM, ITEM_DELIMITATION, PIXEL_DATA, SEQUENCE_DELIMITATION};

/// Nesting deeper than this is refused rather than followed.
const MAX_DEPTH: usize = 32;
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// Why a dataset is not well formed.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("dataset is truncated at byte {offset}")]
    Truncated { offset: u64 },
    #[error("dataset is garbled at byte {offset}: {reason}")]
    Garbled { offset: u64, reason: &'static str },
    #[error("reading dataset failed")]
    Io(#[source] io::Error),
}

/// A captured top-level element. `vr` is `None` for implicit VR input; sequences are
/// captured with an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub tag: u32,
    pub vr: Option<[u8; 2]>,
    pub value: Vec<u8>,
}

impl Element {
    pub fn is_sequence(&self) -> bool {
        self.vr == Some(*b"SQ")
    }
}

/// What the walker reads from: it must be able to skip value bytes and tell where input ends.
pub trait Source {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()>;
    fn skip(&mut self, count: u64) -> io::Result<()>;
    fn at_end(&mut self) -> io::Result<bool>;
}

/// A seekable input of known length: skipping is a seek.
pub struct SeekSource<R> {
    inner: R,
    position: u64,
    length: u64,
}

impl<R: Read + Seek> SeekSource<R> {
    pub fn new(mut inner: R) -> io::Result<Self> {
        let position = inner.stream_position()?;
        let length = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(position))?;
        Ok(Self { inner, position, length })
    }
}

impl<R: Read + Seek> Source for SeekSource<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        self.position += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, count: u64) -> io::Result<()> {
        if self.length - self.position < count {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.inner.seek_relative(count as i64)?;
        self.position += count;
        Ok(())
    }

    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.position >= self.length)
    }
}

/// A forward-only input, such as an inflating reader: skipping reads and discards.
pub struct StreamSource<R>(pub R);

impl<R: BufRead> Source for StreamSource<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact(buf)
    }

    fn skip(&mut self, count: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.0).take(count), &mut io::sink())?;
        if copied < count {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.0.fill_buf()?.is_empty())
    }
}

/// Walks a whole dataset read from `source`, capturing the top-level elements for which
/// `capture` is true and whose value is at most `max_value` bytes.
pub fn walk(
    source: &mut dyn Source,
    syntax: Syntax,
    capture: &dyn Fn(u32) -> bool,
    max_value: u32,
) -> Result<Vec<Element>, WalkError> {
    let mut walker = Walker { source, offset: 0, capture, max_value, captured: Vec::new(), tree: None, extents: None };
    walker.dataset(syntax, End::Input, 0)?;
    Ok(walker.captured)
}

/// Where a top-level element lies in a data set: its tag, and the byte range from its
/// header to the end of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub tag: u32,
    pub start: u64,
    pub end: u64,
}

/// Walks a whole data set like [`walk`], and also says where each top-level element lies.
pub fn walk_extents(
    source: &mut dyn Source,
    syntax: Syntax,
    capture: &dyn Fn(u32) -> bool,
    max_value: u32,
) -> Result<(Vec<Element>, Vec<Extent>), WalkError> {
    let mut walker =
        Walker { source, offset: 0, capture, max_value, captured: Vec::new(), tree: None, extents: Some(Vec::new()) };
    walker.dataset(syntax, End::Input, 0)?;
    Ok((walker.captured, walker.extents.unwrap_or_default()))
}

/// Reads a whole data set as a tree: every element at every depth, values up to
/// `max_inline` bytes held, larger ones located. `implicit_vr` gives the VR of elements in
/// implicit-VR data sets (a data dictionary's job).
pub fn tree(
    source: &mut dyn Source,
    syntax: Syntax,
    max_inline: u32,
    implicit_vr: &dyn Fn(u32) -> [u8; 2],
) -> Result<Vec<Node>, WalkError> {
    let mut walker = Walker {
        source,
        offset: 0,
        capture: &|_| false,
        max_value: max_inline,
        captured: Vec::new(),
        tree: Some(implicit_vr),
        extents: None,
    };
    walker.dataset(syntax, End::Input, 0)
}

/// Runs `read` over a data set from `reader`, inflating a deflated syntax on the way.
fn over<R: BufRead + Seek, T>(
    reader: R,
    syntax: Syntax,
    read: impl FnOnce(&mut dyn Source) -> Result<T, WalkError>,
) -> Result<T, WalkError> {
    if syntax.deflated {
        read(&mut StreamSource(io::BufReader::new(flate2::bufread::DeflateDecoder::new(reader))))
    } else {
        read(&mut SeekSource::new(reader).map_err(WalkError::Io)?)
    }
}

/// [`tree`] over a data set stored in a file, from its current position.
pub fn tree_file(
    file: &mut std::fs::File,
    syntax: Syntax,
    max_inline: u32,
    implicit_vr: &dyn Fn(u32) -> [u8; 2],
) -> Result<Vec<Node>, WalkError> {
    let buffered = io::BufReader::with_capacity(64 * 1024, file);
    over(buffered, syntax, |source| tree(source, syntax, max_inline, implicit_vr))
}

/// Where each top-level element of a data set stored in a file lies, from its current
/// position (in the inflated data set, for a deflated syntax).
pub fn extents_file(file: &mut std::fs::File, syntax: Syntax) -> Result<Vec<Extent>, WalkError> {
    let buffered = io::BufReader::with_capacity(64 * 1024, file);
    over(buffered, syntax, |source| Ok(walk_extents(source, syntax, &|_| false, 0)?.1))
}

/// Walks a dataset held in memory. Deflated syntaxes are inflated on the way.
pub fn walk_bytes(
    bytes: &[u8],
    syntax: Syntax,
    capture: &dyn Fn(u32) -> bool,
    max_value: u32,
) -> Result<Vec<Element>, WalkError> {
    over(io::Cursor::new(bytes), syntax, |source| walk(source, syntax, capture, max_value))
}

/// Walks a dataset stored in a file, from its current position. Deflated syntaxes are
/// inflated on the way.
pub fn walk_file(
    file: &mut std::fs::File,
    syntax: Syntax,
    capture: &dyn Fn(u32) -> bool,
    max_value: u32,
) -> Result<Vec<Element>, WalkError> {
    let buffered = io::BufReader::with_capacity(64 * 1024, file);
    over(buffered, syntax, |source| walk(source, syntax, capture, max_value))
}

#[derive(Clone, Copy)]
enum End {
    Input,
    At(u64),
    ItemDelimiter,
}

struct Walker<'a> {
    source: &'a mut dyn Source,
    offset: u64,
    capture: &'a dyn Fn(u32) -> bool,
    max_value: u32,
    captured: Vec<Element>,
    /// In tree mode: the VR of an implicit-VR element, by tag.
    tree: Option<&'a dyn Fn(u32) -> [u8; 2]>,
    /// Where each top-level element lies, when asked for.
    extents: Option<Vec<Extent>>,
}

/// One element of a data set tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub tag: u32,
    pub vr: [u8; 2],
    pub value: NodeValue,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeValue {
    /// The value bytes, as encoded.
    Bytes(Vec<u8>),
    /// A value too large to hold: where it is in the (inflated) data set.
    Bulk { offset: u64, length: u64 },
    /// A sequence's items.
    Items(Vec<Vec<Node>>),
}

/// VRs whose explicit form has a 2-byte reserved field and a 4-byte length.
const LONG_VRS: &[&[u8; 2]] =
    &[b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];
const SHORT_VRS: &[&[u8; 2]] = &[
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
    b"ST", b"TM", b"UI", b"UL", b"US",
];

impl Walker<'_> {
    fn fail(&self, reason: &'static str) -> WalkError {
        WalkError::Garbled { offset: self.offset, reason }
    }

    fn read<const N: usize>(&mut self) -> Result<[u8; N], WalkError> {
        let mut buf = [0u8; N];
        self.source.read_exact(&mut buf).map_err(|e| self.io_error(e))?;
        self.offset += N as u64;
        Ok(buf)
    }

    fn skip(&mut self, count: u64) -> Result<(), WalkError> {
        self.source.skip(count).map_err(|e| self.io_error(e))?;
        self.offset += count;
        Ok(())
    }

    fn io_error(&self, error: io::Error) -> WalkError {
        match error.kind() {
            io::ErrorKind::UnexpectedEof => WalkError::Truncated { offset: self.offset },
            // flate2 reports a corrupt deflate stream as InvalidInput or InvalidData.
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => self.fail("corrupt deflate stream"),
            _ => WalkError::Io(error),
        }
    }

    fn u16(&mut self, syntax: Syntax) -> Result<u16, WalkError> {
        let b = self.read::<2>()?;
        Ok(if syntax.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    fn u32(&mut self, syntax: Syntax) -> Result<u32, WalkError> {
        let b = self.read::<4>()?;
        Ok(if syntax.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    fn tag(&mut self, syntax: Syntax) -> Result<u32, WalkError> {
        let group = self.u16(syntax)?;
        let element = self.u16(syntax)?;
        Ok(((group as u32) << 16) | element as u32)
    }

    fn dataset(&mut self, syntax: Syntax, end: End, depth: usize) -> Result<Vec<Node>, WalkError> {
        if depth > MAX_DEPTH {
            return Err(self.fail("sequences nested too deeply"));
        }
        let mut nodes = Vec::new();
        loop {
            match end {
                End::Input if self.source.at_end().map_err(WalkError::Io)? => return Ok(nodes),
                End::At(limit) if self.offset == limit => return Ok(nodes),
                End::At(limit) if self.offset > limit => return Err(self.fail("element overruns its item")),
                _ => {}
            }
            let element_start = self.offset;
            let tag = self.tag(syntax)?;
            if tag == ITEM_DELIMITATION {
                self.u32(syntax)?;
                return match end {
                    End::ItemDelimiter => Ok(nodes),
                    _ => Err(self.fail("item delimiter outside an item")),
                };
            }
            if tag >> 16 == 0xFFFE {
                return Err(self.fail("item tag where an element was expected"));
            }
            let (vr, length) = if syntax.explicit_vr {
                let vr = self.read::<2>()?;
                if LONG_VRS.contains(&&vr) {
                    self.read::<2>()?;
                    (Some(vr), self.u32(syntax)?)
                } else if SHORT_VRS.contains(&&vr) {
                    (Some(vr), self.u16(syntax)? as u32)
                } else {
                    return Err(self.fail("unknown value representation"));
                }
            } else {
                (None, self.u32(syntax)?)
            };
            let wanted = depth == 0 && (self.capture)(tag);
            if length == UNDEFINED_LENGTH {
                let is_sequence = match vr {
                    Some(vr) => &vr == b"SQ" || &vr == b"UN",
                    None => true,
                };
                let start = self.offset;
                if tag == PIXEL_DATA {
                    self.fragments(syntax)?;
                    if self.tree.is_some() {
                        let value = NodeValue::Bulk { offset: start, length: self.offset - start };
                        nodes.push(Node { tag, vr: vr.unwrap_or(*b"OB"), value });
                    }
                } else if is_sequence {
                    // An undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2).
                    let inner = if vr == Some(*b"UN") { Syntax::IMPLICIT_LE } else { syntax };
                    let items = self.sequence(inner, depth + 1, None)?;
                    if self.tree.is_some() {
                        nodes.push(Node { tag, vr: *b"SQ", value: NodeValue::Items(items) });
                    }
                } else {
                    return Err(self.fail("undefined length on a value that cannot have one"));
                }
                if wanted {
                    self.captured.push(Element { tag, vr: Some(*b"SQ"), value: Vec::new() });
                }
                self.note_extent(depth, tag, element_start);
                continue;
            }
            if let End::At(limit) = end
                && self.offset + length as u64 > limit
            {
                return Err(self.fail("element overruns its item"));
            }
            if let Some(implicit_vr) = self.tree {
                let vr = vr.unwrap_or_else(|| implicit_vr(tag));
                let value = if &vr == b"SQ" {
                    let limit = self.offset + length as u64;
                    NodeValue::Items(self.sequence(syntax, depth + 1, Some(limit))?)
                } else if length <= self.max_value {
                    NodeValue::Bytes(self.read_value(length)?)
                } else {
                    let offset = self.offset;
                    self.skip(length as u64)?;
                    NodeValue::Bulk { offset, length: length as u64 }
                };
                nodes.push(Node { tag, vr, value });
            } else if wanted && vr == Some(*b"SQ") {
                self.skip(length as u64)?;
                self.captured.push(Element { tag, vr, value: Vec::new() });
            } else if wanted && length <= self.max_value {
                let value = self.read_value(length)?;
                self.captured.push(Element { tag, vr, value });
            } else {
                self.skip(length as u64)?;
            }
            self.note_extent(depth, tag, element_start);
        }
    }

    fn note_extent(&mut self, depth: usize, tag: u32, start: u64) {
        if let (0, Some(extents)) = (depth, &mut self.extents) {
            extents.push(Extent { tag, start, end: self.offset });
        }
    }

    fn read_value(&mut self, length: u32) -> Result<Vec<u8>, WalkError> {
        let mut value = vec![0u8; length as usize];
        self.source.read_exact(&mut value).map_err(|e| self.io_error(e))?;
        self.offset += length as u64;
        Ok(value)
    }

    /// The items of a sequence: up to its delimiter, or to `limit` for a defined length.
    fn sequence(&mut self, syntax: Syntax, depth: usize, limit: Option<u64>) -> Result<Vec<Vec<Node>>, WalkError> {
        let mut items = Vec::new();
        loop {
            if limit.is_some_and(|limit| self.offset >= limit) {
                return Ok(items);
            }
            let tag = self.tag(syntax)?;
            let length = self.u32(syntax)?;
            match tag {
                SEQUENCE_DELIMITATION if limit.is_none() => return Ok(items),
                ITEM if length == UNDEFINED_LENGTH => items.push(self.dataset(syntax, End::ItemDelimiter, depth)?),
                ITEM => {
                    let end = self.offset + length as u64;
                    items.push(self.dataset(syntax, End::At(end), depth)?)
                }
                _ => return Err(self.fail("expected an item in a sequence")),
            }
        }
    }

    fn fragments(&mut self, syntax: Syntax) -> Result<(), WalkError> {
        loop {
            let tag = self.tag(syntax)?;
            let length = self.u32(syntax)?;
            match tag {
                SEQUENCE_DELIMITATION => return Ok(()),
                ITEM if length != UNDEFINED_LENGTH => self.skip(length as u64)?,
                _ => return Err(self.fail("expected a pixel data fragment")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::{self, tag};
    use crate::write::DatasetWriter;

    fn sample(syntax: Syntax) -> Vec<u8> {
        let mut w = DatasetWriter::new(syntax);
        w.text(tags::SOP_CLASS_UID, *b"UI", "1.2.840.10008.5.1.4.1.1.2")
            .text(tags::SOP_INSTANCE_UID, *b"UI", "1.2.3.4")
            .begin_sequence(tag(0x0008, 0x1115))
            .begin_item()
            .text(tag(0x0008, 0x1150), *b"UI", "1.2.3")
            .begin_sequence(tag(0x0008, 0x1199))
            .begin_item()
            .text(tag(0x0008, 0x1155), *b"UI", "1.2.3.5")
            .end_item()
            .end_sequence()
            .end_item()
            .end_sequence()
            .text(tag(0x0010, 0x0010), *b"PN", "Yamada^Tarou")
            .text(tags::STUDY_INSTANCE_UID, *b"UI", "1.2.3")
            .element(tag(0x0028, 0x0010), *b"US", &[2, 0]);
        if syntax.explicit_vr {
            w.encapsulated_pixel_data(&[&[1, 2, 3], &[4, 5, 6, 7]]);
        } else {
            w.element(tags::PIXEL_DATA, *b"OW", &[0; 8]);
        }
        w.into_bytes()
    }

    fn wanted(t: u32) -> bool {
        t == tag(0x0010, 0x0010) || t == tags::SOP_INSTANCE_UID || t == tag(0x0008, 0x1115)
    }

    #[test]
    fn captures_top_level_values_in_every_syntax() {
        for syntax in
            [Syntax::IMPLICIT_LE, Syntax::EXPLICIT_LE, Syntax { explicit_vr: true, big_endian: true, deflated: false }]
        {
            let captured = walk_bytes(&sample(syntax), syntax, &wanted, 1024).expect("valid dataset");
            let tags: Vec<u32> = captured.iter().map(|e| e.tag).collect();
            assert_eq!(tags, vec![tags::SOP_INSTANCE_UID, tag(0x0008, 0x1115), tag(0x0010, 0x0010)]);
            assert_eq!(captured[2].value, b"Yamada^Tarou");
        }
    }

    /// Offsets where a top-level element ends: a cut there leaves a shorter but well-formed
    /// dataset, which only the transport (the last-fragment flag) can tell apart.
    fn element_boundaries(bytes: &[u8], syntax: Syntax) -> Vec<usize> {
        (1..=bytes.len()).filter(|&cut| walk_bytes(&bytes[..cut], syntax, &|_| false, 0).is_ok()).collect()
    }

    #[test]
    fn every_truncation_inside_an_element_is_refused() {
        for syntax in [Syntax::IMPLICIT_LE, Syntax::EXPLICIT_LE] {
            let bytes = sample(syntax);
            let boundaries = element_boundaries(&bytes, syntax);
            // SOP Class, SOP Instance, the sequence, name, study, rows, pixel data.
            assert_eq!(boundaries.len(), 7, "{syntax:?}");
            for cut in (1..bytes.len()).filter(|c| !boundaries.contains(c)) {
                let result = walk_bytes(&bytes[..cut], syntax, &wanted, 1024);
                assert!(result.is_err(), "cut at {cut} of {} accepted in {syntax:?}", bytes.len());
            }
        }
    }

    #[test]
    fn deflated_datasets_are_inflated() {
        use std::io::Write;
        let plain = sample(Syntax::EXPLICIT_LE);
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&plain).expect("in memory");
        let deflated = encoder.finish().expect("in memory");
        let syntax = Syntax::from_uid(crate::syntax::DEFLATED_EXPLICIT_VR_LE).expect("known");
        assert_eq!(walk_bytes(&deflated, syntax, &wanted, 1024).expect("valid").len(), 3);
        assert!(walk_bytes(&deflated[..deflated.len() / 2], syntax, &wanted, 1024).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        let garbage = b"this is not a dicom dataset at all, just text".to_vec();
        assert!(walk_bytes(&garbage, Syntax::EXPLICIT_LE, &wanted, 1024).is_err());
        let mut bad_vr = sample(Syntax::EXPLICIT_LE);
        bad_vr[4] = b'z';
        assert!(matches!(walk_bytes(&bad_vr, Syntax::EXPLICIT_LE, &wanted, 1024), Err(WalkError::Garbled { .. })));
    }

    #[test]
    fn trees_hold_nested_items_and_locate_large_values() {
        for syntax in [Syntax::IMPLICIT_LE, Syntax::EXPLICIT_LE] {
            let bytes = sample(syntax);
            let implicit = |t: u32| if t == tag(0x0008, 0x1115) || t == tag(0x0008, 0x1199) { *b"SQ" } else { *b"UN" };
            let nodes = tree(&mut SeekSource::new(io::Cursor::new(&bytes)).expect("cursor"), syntax, 8, &implicit)
                .expect("valid");
            assert_eq!(nodes.len(), 7, "{syntax:?}");
            let NodeValue::Items(items) = &nodes[2].value else { panic!("a sequence") };
            let NodeValue::Items(inner) = &items[0][1].value else { panic!("a nested sequence") };
            assert_eq!(inner[0][0].value, NodeValue::Bytes(b"1.2.3.5\0".to_vec()));
            // The 26-byte SOP class UID is larger than 8 bytes: located, not held.
            assert!(matches!(nodes[0].value, NodeValue::Bulk { length: 26, .. }), "{:?}", nodes[0]);
            let NodeValue::Bulk { offset, length } = nodes[0].value else { unreachable!() };
            assert_eq!(&bytes[offset as usize..(offset + length) as usize], b"1.2.840.10008.5.1.4.1.1.2\0");
        }
    }

    #[test]
    fn an_empty_dataset_is_well_formed() {
        assert!(walk_bytes(&[], Syntax::EXPLICIT_LE, &wanted, 1024).expect("empty").is_empty());
    }
}
