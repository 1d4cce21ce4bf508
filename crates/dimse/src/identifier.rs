//! Query/retrieve identifiers (PS3.4 C.4): from request data set to [`Query`], and from
//! [`QueryMatch`] to response data set.

use renkei_dicom::charset::{SpecificCharacterSet, TextKind};
use renkei_dicom::tags::{QUERY_RETRIEVE_LEVEL, RETRIEVE_AE_TITLE, SPECIFIC_CHARACTER_SET, tag};
use renkei_dicom::walk::walk_bytes;
use renkei_dicom::write::DatasetWriter;
use renkei_dicom::{Element, Syntax, text};
use renkei_domain::query::{Attribute, MatchKind, Matcher, Query, QueryKey, QueryLevel, QueryMatch};

/// The query/retrieve information models Renkei serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    PatientRoot,
    StudyRoot,
}

/// What a query/retrieve SOP class is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Find,
    Move,
    Get,
}

/// The model and operation of a query/retrieve SOP class UID.
pub fn sop_class(uid: &str) -> Option<(Model, Operation)> {
    Some(match uid {
        "1.2.840.10008.5.1.4.1.2.1.1" => (Model::PatientRoot, Operation::Find),
        "1.2.840.10008.5.1.4.1.2.1.2" => (Model::PatientRoot, Operation::Move),
        "1.2.840.10008.5.1.4.1.2.1.3" => (Model::PatientRoot, Operation::Get),
        "1.2.840.10008.5.1.4.1.2.2.1" => (Model::StudyRoot, Operation::Find),
        "1.2.840.10008.5.1.4.1.2.2.2" => (Model::StudyRoot, Operation::Move),
        "1.2.840.10008.5.1.4.1.2.2.3" => (Model::StudyRoot, Operation::Get),
        _ => return None,
    })
}

/// An element ready to write: tag, VR and value bytes.
type EncodedElement = (u32, [u8; 2], Vec<u8>);

/// A request identifier, as received.
#[derive(Debug, Clone)]
pub struct Identifier {
    pub elements: Vec<Element>,
    pub level: QueryLevel,
    pub specific_character_set: Option<String>,
}

/// Why an identifier was refused, said so that it fits an Error Comment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct IdentifierError(pub String);

/// Identifier values longer than this are not keys anyone sends; they are skipped.
const MAX_KEY_VALUE: u32 = 64 * 1024;
const INSTITUTION_NAME: u32 = tag(0x0008, 0x0080);

/// Reads the identifier of a C-FIND, C-MOVE or C-GET request.
pub fn parse(bytes: &[u8], syntax: Syntax, model: Model) -> Result<Identifier, IdentifierError> {
    let elements = walk_bytes(bytes, syntax, &|_| true, MAX_KEY_VALUE)
        .map_err(|e| IdentifierError(format!("identifier is malformed: {e}")))?;
    let value = |t: u32| elements.iter().find(|e| e.tag == t).map(|e| text::ascii(&e.value));
    let level = value(QUERY_RETRIEVE_LEVEL).ok_or_else(|| IdentifierError("Query/Retrieve Level is missing".into()))?;
    let level =
        QueryLevel::parse(&level).ok_or_else(|| IdentifierError(format!("unknown Query/Retrieve Level {level}")))?;
    if model == Model::StudyRoot && level == QueryLevel::Patient {
        return Err(IdentifierError("Study Root has no PATIENT level".into()));
    }
    let specific_character_set = value(SPECIFIC_CHARACTER_SET);
    Ok(Identifier { elements, level, specific_character_set })
}

impl Identifier {
    /// The query its keys describe.
    pub fn query(&self) -> Result<Query, IdentifierError> {
        let mut keys = Vec::new();
        for element in &self.elements {
            let Some(attribute) = Attribute::from_tag((element.tag >> 16) as u16, element.tag as u16) else { continue };
            if attribute.level() > self.level || element.is_sequence() {
                continue;
            }
            let kind =
                if attribute.kind() == MatchKind::PersonName { TextKind::PersonName } else { TextKind::MultiValued };
            let (values, _) = self.character_set().decode_values(&element.value, kind);
            let raw = values.join("\\");
            let matcher = Matcher::parse(attribute, &raw).map_err(|e| IdentifierError(e.to_string()))?;
            keys.push(QueryKey { attribute, matcher });
        }
        Ok(Query::new(self.level, keys))
    }

    /// For C-MOVE and C-GET: the query, which must name its entities by unique key (PS3.4
    /// C.4.2.2.1) so that a retrieve never sweeps up a whole facility by accident.
    pub fn retrieve_query(&self) -> Result<Query, IdentifierError> {
        let query = self.query()?;
        let unique = Attribute::unique_key(self.level);
        let named = query
            .keys
            .iter()
            .any(|k| k.attribute == unique && matches!(k.matcher, Matcher::Exact(_) | Matcher::UidList(_)));
        if named {
            Ok(query)
        } else {
            Err(IdentifierError(format!("{} must list the entities to retrieve", unique.keyword())))
        }
    }

    /// The character set the request declared (the default repertoire if none).
    fn character_set(&self) -> SpecificCharacterSet {
        self.specific_character_set.as_deref().map(SpecificCharacterSet::parse).unwrap_or_default()
    }

    /// The response data set for one match: every requested key, with its value or empty.
    ///
    /// Text goes out in the character set the query declared or, if it declared none, the one
    /// the data came in. If a value cannot be represented there, the whole response goes out
    /// in UTF-8 (ISO_IR 192), declared as such, rather than with characters lost.
    pub fn response(&self, found: &QueryMatch, syntax: Syntax, retrieve_ae: &str) -> Vec<u8> {
        let target = match (&self.specific_character_set, &found.character_set) {
            (Some(declared), _) => SpecificCharacterSet::parse(declared),
            (None, Some(stored)) => SpecificCharacterSet::parse(stored),
            (None, None) => SpecificCharacterSet::default(),
        };
        let out = match self.encoded_elements(found, retrieve_ae, &target) {
            Some(out) => out,
            None => {
                tracing::debug!(charset = target.value(), "response falls back to UTF-8");
                self.encoded_elements(found, retrieve_ae, &SpecificCharacterSet::utf8()).unwrap_or_default()
            }
        };
        let mut writer = DatasetWriter::new(syntax);
        for (t, vr, value) in &out {
            writer.element(*t, *vr, value);
        }
        writer.into_bytes()
    }

    /// The response's elements in tag order with values encoded in `charset`, or `None` if a
    /// value cannot be represented in it.
    fn encoded_elements(
        &self,
        found: &QueryMatch,
        retrieve_ae: &str,
        charset: &SpecificCharacterSet,
    ) -> Option<Vec<EncodedElement>> {
        let mut out: Vec<EncodedElement> = Vec::new();
        let mut non_ascii = false;
        for element in &self.elements {
            let t = element.tag;
            if t == SPECIFIC_CHARACTER_SET {
                continue;
            }
            let attribute = Attribute::from_tag((t >> 16) as u16, t as u16);
            let vr = element.vr.unwrap_or_else(|| attribute.map_or(*b"UN", value_representation));
            let value: Vec<u8> = if t == QUERY_RETRIEVE_LEVEL {
                self.level.as_str().into()
            } else if t == RETRIEVE_AE_TITLE {
                retrieve_ae.into()
            } else if element.is_sequence() {
                Vec::new()
            } else {
                match attribute.and_then(|a| found.values.get(&a).map(|v| (a, v))) {
                    Some((attribute, value)) => {
                        non_ascii |= !value.is_ascii();
                        let kind = if attribute.kind() == MatchKind::PersonName {
                            TextKind::PersonName
                        } else {
                            TextKind::MultiValued
                        };
                        charset.encode(value, kind).ok()?
                    }
                    None => Vec::new(),
                }
            };
            out.push((t, vr, value));
        }
        if !out.iter().any(|(t, _, _)| *t == QUERY_RETRIEVE_LEVEL) {
            out.push((QUERY_RETRIEVE_LEVEL, *b"CS", self.level.as_str().into()));
        }
        // What another facility shares is marked with that facility's name, asked for or not.
        let institution = Attribute::InstitutionName;
        if let (Some(name), Some(_)) = (found.values.get(&institution), &found.shared)
            && !out.iter().any(|(t, _, _)| *t == INSTITUTION_NAME)
        {
            non_ascii |= !name.is_ascii();
            out.push((INSTITUTION_NAME, *b"LO", charset.encode(name, TextKind::MultiValued).ok()?));
        }
        if (non_ascii || self.specific_character_set.is_some()) && !charset.is_default() {
            out.push((SPECIFIC_CHARACTER_SET, *b"CS", charset.value().as_bytes().to_vec()));
        }
        out.sort_by_key(|(t, _, _)| *t);
        Some(out)
    }
}

/// The value representation of an attribute, for explicit-VR responses to implicit-VR requests.
fn value_representation(attribute: Attribute) -> [u8; 2] {
    let vr = attribute.vr().as_bytes();
    [vr[0], vr[1]]
}

/// The data set of a final C-MOVE/C-GET response that lists failed instances (0008,0058).
pub fn failed_instances(uids: &[String], syntax: Syntax) -> Vec<u8> {
    let mut writer = DatasetWriter::new(syntax);
    writer.text(tag(0x0008, 0x0058), *b"UI", &uids.join("\\"));
    writer.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(level: &str, extra: &[(u32, [u8; 2], &str)]) -> Vec<u8> {
        let mut w = DatasetWriter::new(Syntax::EXPLICIT_LE);
        let mut elements: Vec<(u32, [u8; 2], &str)> = vec![(QUERY_RETRIEVE_LEVEL, *b"CS", level)];
        elements.extend_from_slice(extra);
        elements.sort_by_key(|e| e.0);
        for (t, vr, v) in elements {
            w.text(t, vr, v);
        }
        w.into_bytes()
    }

    #[test]
    fn keys_become_a_query_and_come_back_filled() {
        let bytes = request(
            "STUDY",
            &[
                (tag(0x0010, 0x0010), *b"PN", "YAMADA*"),
                (tag(0x0020, 0x000D), *b"UI", ""),
                (tag(0x0008, 0x1030), *b"LO", ""),
                (tag(0x0009, 0x0010), *b"LO", ""),
            ],
        );
        let identifier = parse(&bytes, Syntax::EXPLICIT_LE, Model::StudyRoot).expect("valid");
        let query = identifier.query().expect("valid keys");
        assert_eq!(query.level, QueryLevel::Study);
        assert_eq!(query.constraints().count(), 1);
        let mut found = QueryMatch::default();
        found.values.insert(Attribute::PatientName, "山田^太郎".into());
        found.values.insert(Attribute::StudyInstanceUid, "1.2.3".into());
        let response = identifier.response(&found, Syntax::EXPLICIT_LE, "RENKEI");
        let back = walk_bytes(&response, Syntax::EXPLICIT_LE, &|_| true, 1024).expect("well formed");
        let get = |t| back.iter().find(|e| e.tag == t).map(|e| e.value.clone());
        assert_eq!(get(SPECIFIC_CHARACTER_SET).as_deref(), Some(&b"ISO_IR 192"[..]));
        assert_eq!(get(tag(0x0010, 0x0010)), Some("山田^太郎 ".as_bytes().to_vec()), "padded to even length");
        assert_eq!(get(tag(0x0020, 0x000D)).as_deref(), Some(&b"1.2.3\0"[..]));
        assert_eq!(get(tag(0x0008, 0x1030)).as_deref(), Some(&b""[..]));
        assert_eq!(get(tag(0x0009, 0x0010)).as_deref(), Some(&b""[..]), "unknown keys come back empty");
    }

    fn name_response(declared: Option<&str>, stored: Option<&str>, name: &str) -> Vec<Element> {
        let mut w = DatasetWriter::new(Syntax::EXPLICIT_LE);
        if let Some(declared) = declared {
            w.text(SPECIFIC_CHARACTER_SET, *b"CS", declared);
        }
        w.text(QUERY_RETRIEVE_LEVEL, *b"CS", "PATIENT").text(tag(0x0010, 0x0010), *b"PN", "");
        let identifier = parse(&w.into_bytes(), Syntax::EXPLICIT_LE, Model::PatientRoot).expect("valid");
        let mut found = QueryMatch { character_set: stored.map(str::to_owned), ..Default::default() };
        found.values.insert(Attribute::PatientName, name.into());
        let response = identifier.response(&found, Syntax::EXPLICIT_LE, "RENKEI");
        walk_bytes(&response, Syntax::EXPLICIT_LE, &|_| true, 1024).expect("well formed")
    }

    fn value(elements: &[Element], t: u32) -> Option<Vec<u8>> {
        elements.iter().find(|e| e.tag == t).map(|e| e.value.clone())
    }

    #[test]
    fn responses_use_the_declared_then_the_stored_character_set() {
        let name = "Yamada^Tarou=山田^太郎=やまだ^たろう";
        // PS3.5 H.3.1 (60 bytes: no padding).
        let h31 = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        let declared = name_response(Some("\\ISO 2022 IR 87"), Some("ISO_IR 192"), name);
        assert_eq!(value(&declared, SPECIFIC_CHARACTER_SET).as_deref(), Some(&b"\\ISO 2022 IR 87 "[..]));
        assert_eq!(value(&declared, tag(0x0010, 0x0010)).as_deref(), Some(&h31[..]));
        let stored = name_response(None, Some("\\ISO 2022 IR 87"), name);
        assert_eq!(value(&stored, tag(0x0010, 0x0010)).as_deref(), Some(&h31[..]));
        // Kanji cannot go out as ISO_IR 13: the whole response goes out as UTF-8, declared.
        let fallback = name_response(Some("ISO_IR 13"), None, name);
        assert_eq!(value(&fallback, SPECIFIC_CHARACTER_SET).as_deref(), Some(&b"ISO_IR 192"[..]));
        assert_eq!(value(&fallback, tag(0x0010, 0x0010)), Some(name.as_bytes().to_vec()), "46 bytes: no padding");
        // Plain ASCII needs no declaration.
        let ascii = name_response(None, None, "Yamada^Tarou");
        assert_eq!(value(&ascii, SPECIFIC_CHARACTER_SET), None);
    }

    #[test]
    fn request_keys_are_decoded_in_the_declared_character_set() {
        let mut w = DatasetWriter::new(Syntax::EXPLICIT_LE);
        w.text(SPECIFIC_CHARACTER_SET, *b"CS", "\\ISO 2022 IR 87")
            .text(QUERY_RETRIEVE_LEVEL, *b"CS", "PATIENT")
            .element(tag(0x0010, 0x0010), *b"PN", b"\x1b$B;3ED\x1b(B*");
        let identifier = parse(&w.into_bytes(), Syntax::EXPLICIT_LE, Model::PatientRoot).expect("valid");
        let query = identifier.query().expect("valid keys");
        assert_eq!(
            query.keys[0].matcher,
            Matcher::PersonName(vec![(renkei_domain::query::NameGroup::Any, "山田*".into())])
        );
    }

    #[test]
    fn refusals() {
        let no_level = {
            let mut w = DatasetWriter::new(Syntax::EXPLICIT_LE);
            w.text(tag(0x0010, 0x0020), *b"LO", "P1");
            w.into_bytes()
        };
        assert!(parse(&no_level, Syntax::EXPLICIT_LE, Model::StudyRoot).is_err());
        assert!(parse(&request("PATIENT", &[]), Syntax::EXPLICIT_LE, Model::StudyRoot).is_err());
        let bad_date = request("STUDY", &[(tag(0x0008, 0x0020), *b"DA", "2024-01")]);
        let identifier = parse(&bad_date, Syntax::EXPLICIT_LE, Model::StudyRoot).expect("parses");
        assert!(identifier.query().is_err());
        let broad =
            parse(&request("STUDY", &[(tag(0x0010, 0x0020), *b"LO", "P1")]), Syntax::EXPLICIT_LE, Model::StudyRoot)
                .expect("parses");
        assert!(broad.retrieve_query().is_err(), "a move must name its studies");
    }
}
