//! Writes a stored data set with some top-level elements replaced, and copies everything
//! else byte for byte. This is how an object goes out under another identity (a study that
//! another facility shares goes out under the receiving facility's own patient) while the
//! stored object stays as received.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::charset::SpecificCharacterSet;
use crate::syntax::Syntax;
use crate::tags::SPECIFIC_CHARACTER_SET;
use crate::walk::{Extent, SeekSource, WalkError, walk_extents};
use crate::write::DatasetWriter;

/// Top-level elements to write in place of a data set's own (or in addition to them, or to
/// leave out), encoded in the data set's layout.
pub struct Replacements {
    syntax: Syntax,
    elements: Vec<(u32, Vec<u8>)>,
}

/// One element of a sequence item: tag, VR, encoded value.
pub type ItemElement = (u32, [u8; 2], Vec<u8>);

impl Replacements {
    /// Sets an element's value (already encoded in the data set's character set).
    pub fn element(&mut self, tag: u32, vr: [u8; 2], value: &[u8]) {
        let mut writer = DatasetWriter::new(self.syntax);
        writer.element(tag, vr, value);
        self.put(tag, writer.into_bytes());
    }

    /// Sets a sequence of items.
    pub fn sequence(&mut self, tag: u32, items: &[Vec<ItemElement>]) {
        let mut writer = DatasetWriter::new(self.syntax);
        writer.begin_sequence(tag);
        for item in items {
            writer.begin_item();
            for (tag, vr, value) in item {
                writer.element(*tag, *vr, value);
            }
            writer.end_item();
        }
        writer.end_sequence();
        self.put(tag, writer.into_bytes());
    }

    /// Leaves an element out.
    pub fn remove(&mut self, tag: u32) {
        self.put(tag, Vec::new());
    }

    fn put(&mut self, tag: u32, encoded: Vec<u8>) {
        self.elements.retain(|(t, _)| *t != tag);
        self.elements.push((tag, encoded));
    }
}

/// Why a data set could not be relabelled.
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error("writing the relabelled data set failed")]
    Io(#[from] io::Error),
    #[error("the deflated data set inflates to more than {MAX_INFLATED} bytes")]
    TooLarge,
}

/// The most a deflated data set may inflate to for relabelling.
pub const MAX_INFLATED: u64 = 256 << 20;

/// Writes the data set read from `input` (from its current position to its end) to `out`,
/// with the top-level elements `replace` sets in place of its own. `replace` is given the
/// data set's Specific Character Set to encode text in. A deflated data set is inflated,
/// relabelled and deflated again.
pub fn relabel<R: Read + Seek>(
    mut input: R,
    syntax: Syntax,
    replace: impl FnOnce(&SpecificCharacterSet, &mut Replacements),
    out: &mut dyn Write,
) -> Result<(), RelabelError> {
    if syntax.deflated {
        let mut plain = Vec::new();
        let inflating = flate2::read::DeflateDecoder::new(io::BufReader::new(input));
        // A deflated data set is inflated in memory, so only up to a bound: a small stored
        // object must not inflate into all of the node's memory.
        inflating.take(MAX_INFLATED + 1).read_to_end(&mut plain).map_err(|error| match error.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                RelabelError::Walk(WalkError::Garbled { offset: 0, reason: "corrupt deflate stream" })
            }
            _ => RelabelError::Io(error),
        })?;
        if plain.len() as u64 > MAX_INFLATED {
            return Err(RelabelError::TooLarge);
        }
        let mut deflated = flate2::write::DeflateEncoder::new(out, flate2::Compression::default());
        let inflated = Syntax { deflated: false, ..syntax };
        relabel(io::Cursor::new(plain), inflated, replace, &mut deflated)?;
        deflated.finish()?;
        return Ok(());
    }
    let origin = input.stream_position()?;
    let mut source = SeekSource::new(io::BufReader::with_capacity(64 * 1024, &mut input))?;
    let (captured, extents) = walk_extents(&mut source, syntax, &|tag| tag == SPECIFIC_CHARACTER_SET, 1024)?;
    let charset = captured
        .first()
        .map(|element| SpecificCharacterSet::parse(&String::from_utf8_lossy(&element.value)))
        .unwrap_or_default();
    let mut replacements = Replacements { syntax, elements: Vec::new() };
    replace(&charset, &mut replacements);
    let mut elements = replacements.elements;
    elements.sort_by_key(|(tag, _)| *tag);
    write_merged(&mut input, origin, &extents, &elements, out)
}

/// Copies the data set's elements and writes the replacements among them in tag order,
/// copying runs of kept elements in one piece.
fn write_merged<R: Read + Seek>(
    input: &mut R,
    origin: u64,
    extents: &[Extent],
    replacements: &[(u32, Vec<u8>)],
    out: &mut dyn Write,
) -> Result<(), RelabelError> {
    let mut pending = replacements.iter().peekable();
    let mut run: Option<(u64, u64)> = None;
    let mut copy = |run: &mut Option<(u64, u64)>, out: &mut dyn Write| -> io::Result<()> {
        if let Some((start, end)) = run.take() {
            input.seek(SeekFrom::Start(origin + start))?;
            let copied = io::copy(&mut input.by_ref().take(end - start), out)?;
            if copied != end - start {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    };
    for extent in extents {
        let mut replaced = false;
        while let Some((tag, encoded)) = pending.next_if(|(tag, _)| *tag <= extent.tag) {
            copy(&mut run, out)?;
            out.write_all(encoded)?;
            replaced |= *tag == extent.tag;
        }
        if !replaced {
            run = match run {
                Some((start, end)) if end == extent.start => Some((start, extent.end)),
                Some(_) => {
                    copy(&mut run, out)?;
                    Some((extent.start, extent.end))
                }
                None => Some((extent.start, extent.end)),
            };
        }
    }
    copy(&mut run, out)?;
    for (_, encoded) in pending {
        out.write_all(encoded)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charset::TextKind;
    use crate::tags::{self, tag};
    use crate::walk::walk_bytes;

    const NAME: u32 = tag(0x0010, 0x0010);
    const ID: u32 = tag(0x0010, 0x0020);
    const BIRTH_DATE: u32 = tag(0x0010, 0x0030);
    const OTHER_IDS: u32 = tag(0x0010, 0x1002);

    fn sample(syntax: Syntax) -> Vec<u8> {
        let mut w = DatasetWriter::new(syntax);
        w.text(SPECIFIC_CHARACTER_SET, *b"CS", "\\ISO 2022 IR 87")
            .text(tags::SOP_INSTANCE_UID, *b"UI", "1.2.3.4")
            .begin_sequence(tag(0x0008, 0x1140))
            .begin_item()
            .text(tags::SOP_INSTANCE_UID, *b"UI", "1.2.3.5")
            .end_item()
            .end_sequence()
            .text(NAME, *b"PN", "Tanaka^Ichiro")
            .text(ID, *b"LO", "E-001")
            .text(tag(0x0010, 0x0032), *b"TM", "1200")
            .text(tags::STUDY_INSTANCE_UID, *b"UI", "1.2.3")
            .element(tags::PIXEL_DATA, *b"OW", &[1, 2, 3, 4]);
        w.into_bytes()
    }

    fn relabelled(syntax: Syntax) -> Vec<u8> {
        let mut out = Vec::new();
        relabel(
            io::Cursor::new(sample(syntax)),
            syntax,
            |charset, r| {
                let name = charset.encode("Yamada^Hanako=山田^花子", TextKind::PersonName).expect("JIS X 0208");
                r.element(NAME, *b"PN", &name);
                r.element(ID, *b"LO", b"W-901");
                r.element(BIRTH_DATE, *b"DA", b"19800102");
                r.sequence(OTHER_IDS, &[vec![(ID, *b"LO", b"E-001".to_vec())]]);
            },
            &mut out,
        )
        .expect("relabel");
        out
    }

    fn value(bytes: &[u8], syntax: Syntax, wanted: u32) -> Option<Vec<u8>> {
        let elements = walk_bytes(bytes, syntax, &|t| t == wanted, 1024).expect("well formed");
        elements.into_iter().next().map(|e| e.value)
    }

    #[test]
    fn replaces_and_inserts_in_tag_order_and_copies_the_rest() {
        for syntax in
            [Syntax::EXPLICIT_LE, Syntax::IMPLICIT_LE, Syntax::from_uid(crate::syntax::EXPLICIT_VR_BE).unwrap()]
        {
            let out = relabelled(syntax);
            assert_eq!(value(&out, syntax, ID).as_deref(), Some(&b"W-901 "[..]), "padded to even length");
            assert_eq!(value(&out, syntax, BIRTH_DATE).as_deref(), Some(&b"19800102"[..]));
            let name = value(&out, syntax, NAME).expect("name");
            assert!(name.windows(3).any(|w| w == b"\x1b$B"), "encoded in the data set's ISO 2022 set");
            assert!(value(&out, syntax, OTHER_IDS).is_some(), "the origin's ID kept in Other Patient IDs");
            assert_eq!(value(&out, syntax, tag(0x0010, 0x0032)).as_deref(), Some(&b"1200"[..]), "kept");
            assert_eq!(value(&out, syntax, tags::PIXEL_DATA).as_deref(), Some(&[1, 2, 3, 4][..]));
            let tags: Vec<u32> = crate::walk::walk_bytes(&out, syntax, &|_| true, 1024)
                .expect("well formed")
                .iter()
                .map(|e| e.tag)
                .collect();
            let mut sorted = tags.clone();
            sorted.sort();
            assert_eq!(tags, sorted, "in tag order");
        }
    }

    #[test]
    fn deflated_data_sets_stay_deflated() {
        let syntax = Syntax::from_uid(crate::syntax::DEFLATED_EXPLICIT_VR_LE).unwrap();
        let out = relabelled(syntax);
        assert_eq!(value(&out, syntax, ID).as_deref(), Some(&b"W-901 "[..]));
    }

    #[test]
    fn garbled_data_sets_are_refused() {
        let mut bytes = sample(Syntax::EXPLICIT_LE);
        bytes.truncate(bytes.len() - 3);
        let result = relabel(io::Cursor::new(bytes), Syntax::EXPLICIT_LE, |_, _| {}, &mut Vec::new());
        assert!(matches!(result, Err(RelabelError::Walk(WalkError::Truncated { .. }))));
    }
}
