//! The index record of a received instance, from the elements captured while walking it.

use renkei_domain::Uid;
use renkei_domain::model::IndexedAttributes;

use crate::charset::{CharsetWarning, SpecificCharacterSet, TextKind};
use crate::tags::{self, tag};
use crate::walk::Element;

/// Values longer than this are never indexed (long text is not a matching key).
pub const MAX_INDEXED_VALUE: u32 = 4096;

/// The top-level tags ingest captures.
pub const INDEX_TAGS: &[u32] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::SOP_CLASS_UID,
    tags::SOP_INSTANCE_UID,
    tag(0x0008, 0x0020),
    tag(0x0008, 0x0021),
    tag(0x0008, 0x0030),
    tag(0x0008, 0x0031),
    tag(0x0008, 0x0050),
    tag(0x0008, 0x0060),
    tag(0x0008, 0x0090),
    tag(0x0008, 0x1030),
    tag(0x0008, 0x103E),
    tag(0x0010, 0x0010),
    tag(0x0010, 0x0020),
    tag(0x0010, 0x0021),
    tag(0x0010, 0x0030),
    tag(0x0010, 0x0040),
    tag(0x0018, 0x0015),
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tag(0x0020, 0x0010),
    tag(0x0020, 0x0011),
    tag(0x0020, 0x0013),
];

/// Whether ingest captures a tag.
pub fn is_index_tag(t: u32) -> bool {
    INDEX_TAGS.contains(&t)
}

/// Why a dataset cannot be indexed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("{0} is missing or empty")]
    Missing(&'static str),
    #[error("{0} is not a valid UID")]
    InvalidUid(&'static str),
}

/// The identity and indexed attributes of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub sop_class_uid: Uid,
    pub sop_instance_uid: Uid,
    pub study_uid: Uid,
    pub series_uid: Uid,
    pub attributes: IndexedAttributes,
}

/// Tags of person names among [`INDEX_TAGS`].
const PERSON_NAMES: [u32; 2] = [tag(0x0010, 0x0010), tag(0x0008, 0x0090)];

/// A stable code for a character-set warning, as recorded in the index.
pub fn warning_code(warning: &CharsetWarning) -> &'static str {
    match warning {
        CharsetWarning::UnknownTerm(_) => "unknown-character-set",
        CharsetWarning::MisusedTerm(_) => "misused-character-set",
        CharsetWarning::ShiftJisMislabelled => "shift-jis-mislabelled",
        CharsetWarning::MissingFinalEscape => "missing-final-escape",
        CharsetWarning::UndeclaredEscape(_) => "undeclared-escape",
        CharsetWarning::UnknownEscape => "unknown-escape",
        CharsetWarning::WronglyDeclared { .. } => "wrongly-declared-character-set",
        CharsetWarning::Undecodable => "undecodable-bytes",
    }
}

/// Builds the index record from captured elements, decoding text under the data set's
/// Specific Character Set.
pub fn extract(elements: &[Element]) -> Result<Extracted, ExtractError> {
    let raw = |t: u32| elements.iter().find(|e| e.tag == t).map(|e| e.value.as_slice());
    let declared = raw(tags::SPECIFIC_CHARACTER_SET).map(|v| String::from_utf8_lossy(v).into_owned());
    let charset = declared.as_deref().map(SpecificCharacterSet::parse).unwrap_or_default();
    let mut warnings: Vec<&'static str> = charset.warnings.iter().map(warning_code).collect();
    let mut text = |t: u32| -> Option<String> {
        let kind = if PERSON_NAMES.contains(&t) { TextKind::PersonName } else { TextKind::MultiValued };
        let (values, found) = charset.decode_values(raw(t)?, kind);
        for warning in &found {
            let code = warning_code(warning);
            if !warnings.contains(&code) {
                warnings.push(code);
            }
        }
        Some(values.join("\\"))
    };
    let mut uid = |t: u32, name: &'static str| -> Result<Uid, ExtractError> {
        let value = text(t).filter(|v| !v.is_empty()).ok_or(ExtractError::Missing(name))?;
        Uid::new(&value).map_err(|_| ExtractError::InvalidUid(name))
    };
    let sop_class_uid = uid(tags::SOP_CLASS_UID, "SOPClassUID")?;
    let sop_instance_uid = uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
    let study_uid = uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
    let series_uid = uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?;
    let mut attributes = IndexedAttributes {
        specific_character_set: declared.map(|d| charset_value(&d)),
        patient_id: text(tag(0x0010, 0x0020)),
        issuer_of_patient_id: text(tag(0x0010, 0x0021)),
        patient_name: text(tag(0x0010, 0x0010)),
        patient_birth_date: text(tag(0x0010, 0x0030)),
        patient_sex: text(tag(0x0010, 0x0040)),
        study_date: text(tag(0x0008, 0x0020)),
        study_time: text(tag(0x0008, 0x0030)),
        accession_number: text(tag(0x0008, 0x0050)),
        study_id: text(tag(0x0020, 0x0010)),
        study_description: text(tag(0x0008, 0x1030)),
        referring_physician_name: text(tag(0x0008, 0x0090)),
        modality: text(tag(0x0008, 0x0060)),
        series_number: text(tag(0x0020, 0x0011)),
        series_description: text(tag(0x0008, 0x103E)),
        body_part_examined: text(tag(0x0018, 0x0015)),
        series_date: text(tag(0x0008, 0x0021)),
        series_time: text(tag(0x0008, 0x0031)),
        instance_number: text(tag(0x0020, 0x0013)),
        text_warnings: Vec::new(),
    };
    attributes.text_warnings = warnings.into_iter().map(str::to_owned).collect();
    Ok(Extracted { sop_class_uid, sop_instance_uid, study_uid, series_uid, attributes })
}

/// The declared Specific Character Set without padding, as it is kept in the index.
fn charset_value(declared: &str) -> String {
    declared.split('\\').map(|t| t.trim_matches([' ', '\0'])).collect::<Vec<_>>().join("\\")
}
