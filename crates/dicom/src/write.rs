//! Encoding of dataset elements: for identifiers, command sets and generated test data.

use crate::syntax::Syntax;
use crate::tags::{ITEM, ITEM_DELIMITATION, SEQUENCE_DELIMITATION};

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// Appends encoded elements to a buffer. For a deflated syntax the elements are written
/// plain and [`into_bytes`](Self::into_bytes) deflates them.
pub struct DatasetWriter {
    syntax: Syntax,
    out: Vec<u8>,
}

impl DatasetWriter {
    pub fn new(syntax: Syntax) -> Self {
        Self { syntax, out: Vec::new() }
    }

    /// The encoded data set, deflated if the syntax is.
    pub fn into_bytes(self) -> Vec<u8> {
        if !self.syntax.deflated {
            return self.out;
        }
        use std::io::Write;
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(&self.out);
        encoder.finish().unwrap_or_default()
    }

    /// Takes what is encoded so far, for writers that stream a large data set out in pieces.
    /// Not for deflated syntaxes, whose stream is deflated as a whole.
    pub fn take(&mut self) -> Vec<u8> {
        debug_assert!(!self.syntax.deflated);
        std::mem::take(&mut self.out)
    }

    /// How many encoded bytes are held.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    fn u16(&mut self, v: u16) {
        let bytes = if self.syntax.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.out.extend_from_slice(&bytes);
    }

    fn u32(&mut self, v: u32) {
        let bytes = if self.syntax.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.out.extend_from_slice(&bytes);
    }

    fn header(&mut self, tag: u32, vr: [u8; 2], length: u32) {
        self.u16((tag >> 16) as u16);
        self.u16(tag as u16);
        if self.syntax.explicit_vr {
            let long = |vr: &[u8; 2]| {
                matches!(
                    vr,
                    b"OB"
                        | b"OD"
                        | b"OF"
                        | b"OL"
                        | b"OV"
                        | b"OW"
                        | b"SQ"
                        | b"SV"
                        | b"UC"
                        | b"UN"
                        | b"UR"
                        | b"UT"
                        | b"UV"
                )
            };
            // A value too long for a 2-byte length (one read from an implicit-VR data set)
            // goes as UN, which has a 4-byte one (PS3.5 6.2.2).
            let vr = if !long(&vr) && length > 0xFFFE && length != UNDEFINED_LENGTH { *b"UN" } else { vr };
            self.out.extend_from_slice(&vr);
            if long(&vr) {
                self.out.extend_from_slice(&[0, 0]);
                self.u32(length);
            } else {
                self.u16(length as u16);
            }
        } else {
            self.u32(length);
        }
    }

    /// Writes one element, padding the value to even length as its VR requires.
    pub fn element(&mut self, tag: u32, vr: [u8; 2], value: &[u8]) -> &mut Self {
        let padded = value.len() + value.len() % 2;
        self.header(tag, vr, padded as u32);
        self.out.extend_from_slice(value);
        if value.len() % 2 == 1 {
            let pad = if matches!(&vr, b"UI" | b"OB" | b"UN") { 0 } else { b' ' };
            self.out.push(pad);
        }
        self
    }

    /// Writes a text element.
    pub fn text(&mut self, tag: u32, vr: [u8; 2], value: &str) -> &mut Self {
        self.element(tag, vr, value.as_bytes())
    }

    /// Writes an unsigned short (US) element.
    pub fn u16_element(&mut self, tag: u32, value: u16) -> &mut Self {
        let bytes = if self.syntax.big_endian { value.to_be_bytes() } else { value.to_le_bytes() };
        self.element(tag, *b"US", &bytes)
    }

    /// Opens an undefined-length sequence; close it with [`end_sequence`](Self::end_sequence).
    pub fn begin_sequence(&mut self, tag: u32) -> &mut Self {
        self.header(tag, *b"SQ", UNDEFINED_LENGTH);
        self
    }

    /// Opens an undefined-length item; close it with [`end_item`](Self::end_item).
    pub fn begin_item(&mut self) -> &mut Self {
        self.u16((ITEM >> 16) as u16);
        self.u16(ITEM as u16);
        self.u32(UNDEFINED_LENGTH);
        self
    }

    pub fn end_item(&mut self) -> &mut Self {
        self.u16((ITEM_DELIMITATION >> 16) as u16);
        self.u16(ITEM_DELIMITATION as u16);
        self.u32(0);
        self
    }

    pub fn end_sequence(&mut self) -> &mut Self {
        self.u16((SEQUENCE_DELIMITATION >> 16) as u16);
        self.u16(SEQUENCE_DELIMITATION as u16);
        self.u32(0);
        self
    }

    /// Writes encapsulated pixel data: an empty basic offset table, then one fragment per frame.
    pub fn encapsulated_pixel_data(&mut self, frames: &[&[u8]]) -> &mut Self {
        self.header(crate::tags::PIXEL_DATA, *b"OB", UNDEFINED_LENGTH);
        self.u16((ITEM >> 16) as u16);
        self.u16(ITEM as u16);
        self.u32(0);
        for frame in frames {
            let padded = frame.len() + frame.len() % 2;
            self.u16((ITEM >> 16) as u16);
            self.u16(ITEM as u16);
            self.u32(padded as u32);
            self.out.extend_from_slice(frame);
            if frame.len() % 2 == 1 {
                self.out.push(0);
            }
        }
        self.end_sequence()
    }

    /// Appends already-encoded bytes (for example a large value written by the caller).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// Writes only the header of an element whose value the caller appends itself.
    pub fn element_header(&mut self, tag: u32, vr: [u8; 2], length: u32) -> &mut Self {
        self.header(tag, vr, length);
        self
    }
}

/// The Implementation Class UID Renkei writes into the file meta it generates.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.329800735698586629295641978511506172918";

/// The preamble, `DICM` and file meta group that make a data set a Part-10 object
/// (PS3.10 7.1). The data set itself follows unchanged.
pub fn part10_header(sop_class: &str, sop_instance: &str, transfer_syntax: &str) -> Vec<u8> {
    let mut meta = DatasetWriter::new(Syntax::EXPLICIT_LE);
    meta.element(crate::tags::tag(0x0002, 0x0001), *b"OB", &[0, 1])
        .text(crate::tags::tag(0x0002, 0x0002), *b"UI", sop_class)
        .text(crate::tags::tag(0x0002, 0x0003), *b"UI", sop_instance)
        .text(crate::tags::tag(0x0002, 0x0010), *b"UI", transfer_syntax)
        .text(crate::tags::tag(0x0002, 0x0012), *b"UI", IMPLEMENTATION_CLASS_UID)
        .text(crate::tags::tag(0x0002, 0x0013), *b"SH", "RENKEI");
    let body = meta.into_bytes();
    let mut group = DatasetWriter::new(Syntax::EXPLICIT_LE);
    group.element(crate::tags::tag(0x0002, 0x0000), *b"UL", &(body.len() as u32).to_le_bytes()).raw(&body);
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(&group.into_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_too_long_for_their_vr_go_as_un() {
        let mut writer = super::DatasetWriter::new(crate::Syntax::EXPLICIT_LE);
        writer.element_header(0x3006_0050, *b"DS", 70_000);
        assert_eq!(writer.take(), [0x06, 0x30, 0x50, 0x00, b'U', b'N', 0, 0, 0x70, 0x11, 0x01, 0x00]);
    }
}
