//! Bulk import of files: Part-10 files (preamble, `DICM`, file meta group) and bare datasets
//! in Implicit VR Little Endian, as older systems wrote them.

use std::io::{Read, Seek};
use std::path::Path;

use renkei_dicom::Syntax;
use renkei_dicom::extract::{extract, is_index_tag};
use renkei_dicom::syntax::IMPLICIT_VR_LE;
use renkei_dicom::walk::{SeekSource, walk};
use renkei_domain::model::StoreOutcome;
use renkei_domain::{FacilityId, Uid};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{Archive, Expected, IngestError, ServiceError};

/// What importing one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Stored(StoreOutcome),
    /// The file is not DICOM at all.
    NotDicom,
    /// The file looks like DICOM but could not be stored.
    Failed(String),
}

/// Where a file's dataset starts and its transfer syntax, or `None` if it is not DICOM.
pub fn read_part10_header(path: &Path) -> std::io::Result<Option<(u64, Uid)>> {
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(64 * 1024);
    (&mut file).take(64 * 1024).read_to_end(&mut head)?;
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Ok(parse_meta(&head[132..]).map(|(meta_len, ts)| (132 + meta_len, ts)));
    }
    // No preamble: accept a bare Implicit VR Little Endian dataset that walks cleanly and
    // carries the identifying UIDs.
    file.rewind()?;
    let mut source = SeekSource::new(std::io::BufReader::new(file))?;
    let Ok(elements) = walk(&mut source, Syntax::IMPLICIT_LE, &is_index_tag, 1024) else { return Ok(None) };
    if elements.is_empty() || extract(&elements).is_err() {
        return Ok(None);
    }
    Ok(Uid::new(IMPLICIT_VR_LE).ok().map(|ts| (0, ts)))
}

/// The file meta information of a Part-10 object, read from its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part10Prefix {
    /// More bytes are needed: at least this many in all.
    NeedMore(usize),
    /// Where the data set starts, its transfer syntax, and the SOP class and instance the
    /// meta announces.
    Header { dataset_offset: usize, transfer_syntax: Uid, sop_class: Option<Uid>, sop_instance: Option<Uid> },
    /// Not a Part-10 object.
    NotDicom,
}

/// Reads the preamble, `DICM` and the file meta group from the start of an object.
pub fn part10_prefix(prefix: &[u8]) -> Part10Prefix {
    const META_START: usize = 132;
    if prefix.len() < META_START + 12 {
        return Part10Prefix::NeedMore(META_START + 12);
    }
    if &prefix[128..132] != b"DICM" {
        return Part10Prefix::NotDicom;
    }
    // (0002,0000) File Meta Information Group Length, UL, gives the size of the rest.
    if prefix[META_START..META_START + 6] != [0x02, 0x00, 0x00, 0x00, b'U', b'L'] {
        return Part10Prefix::NotDicom;
    }
    let length = u32::from_le_bytes([prefix[140], prefix[141], prefix[142], prefix[143]]) as usize;
    let end = META_START + 12 + length;
    if prefix.len() < end {
        return Part10Prefix::NeedMore(end);
    }
    let Some((elements, _)) = meta_elements(&prefix[META_START..end]) else { return Part10Prefix::NotDicom };
    let Some(transfer_syntax) = meta_uid(&elements, 0x0010) else { return Part10Prefix::NotDicom };
    let (sop_class, sop_instance) = (meta_uid(&elements, 0x0002), meta_uid(&elements, 0x0003));
    Part10Prefix::Header { dataset_offset: end, transfer_syntax, sop_class, sop_instance }
}

/// A file meta element: its element number in group 0002, and its value.
type MetaElement<'a> = (u16, &'a [u8]);

/// The elements of an encoded file meta group, and where the group ends; `None` if an
/// element runs past the bytes given.
fn meta_elements(bytes: &[u8]) -> Option<(Vec<MetaElement<'_>>, usize)> {
    let mut elements = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        if group != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
        let vr = &bytes[at + 4..at + 6];
        let (header, length) = if matches!(vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR") {
            let raw = bytes.get(at + 8..at + 12)?;
            (12, u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
        } else {
            (8, u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize)
        };
        elements.push((element, bytes.get(at + header..at + header + length)?));
        at += header + length;
    }
    Some((elements, at))
}

fn meta_uid(elements: &[MetaElement<'_>], wanted: u16) -> Option<Uid> {
    let (_, value) = elements.iter().find(|(element, _)| *element == wanted)?;
    Uid::new(&String::from_utf8_lossy(value)).ok()
}

/// Parses the file meta group (always Explicit VR Little Endian) and returns its length and
/// the Transfer Syntax UID.
fn parse_meta(bytes: &[u8]) -> Option<(u64, Uid)> {
    let (elements, end) = meta_elements(bytes)?;
    Some((end as u64, meta_uid(&elements, 0x0010)?))
}

impl Archive {
    /// Imports one file into `facility`.
    pub async fn import_file(&self, facility: &FacilityId, path: &Path) -> Result<ImportOutcome, ServiceError> {
        let owned = path.to_path_buf();
        let header = tokio::task::spawn_blocking(move || read_part10_header(&owned))
            .await
            .map_err(|e| ServiceError::internal("import task failed", &e))?;
        let (offset, transfer_syntax) = match header {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(ImportOutcome::NotDicom),
            Err(error) => return Ok(ImportOutcome::Failed(format!("cannot read file: {error}"))),
        };
        let mut ingest = match self.begin_ingest(facility.clone(), transfer_syntax).await {
            Ok(ingest) => ingest,
            Err(error) if error.kind == renkei_domain::ErrorKind::Invalid => {
                return Ok(ImportOutcome::Failed(error.message));
            }
            Err(error) => return Err(error),
        };
        let mut file = tokio::fs::File::open(path).await.map_err(|e| ServiceError::internal("cannot open file", &e))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| ServiceError::internal("cannot read file", &e))?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => {
                    ingest.abort().await;
                    return Ok(ImportOutcome::Failed(format!("cannot read file: {error}")));
                }
            };
            if let Err(error) = ingest.write(&buffer[..read]).await {
                return match error {
                    IngestError::Service(error) => Err(error),
                    other => Ok(ImportOutcome::Failed(other.to_string())),
                };
            }
        }
        match ingest.finish(&Expected::default()).await {
            Ok(ingested) => Ok(ImportOutcome::Stored(ingested.outcome)),
            Err(IngestError::Service(error)) => Err(error),
            Err(rejected) => Ok(ImportOutcome::Failed(rejected.to_string())),
        }
    }
}
