//! DICOM JSON (PS3.18 Annex F) for query results: UTF-8 throughout, person names as
//! Alphabetic/Ideographic/Phonetic objects, IS values as numbers.

use renkei_domain::names::PersonName;
use renkei_domain::query::{Attribute, QueryMatch};
use serde_json::{Map, Value, json};

fn tag_key(attribute: Attribute) -> String {
    let (group, element) = attribute.tag();
    format!("{group:04X}{element:04X}")
}

/// A person name as a DICOM JSON PN object: its non-empty component groups.
pub(crate) fn person_name(value: &str) -> Value {
    let name = PersonName::parse(value);
    let mut object = Map::new();
    for (key, group) in
        [("Alphabetic", &name.alphabetic), ("Ideographic", &name.ideographic), ("Phonetic", &name.phonetic)]
    {
        if !group.is_empty() {
            object.insert(key.to_owned(), Value::String(group.clone()));
        }
    }
    Value::Object(object)
}

fn values(vr: &str, value: &str) -> Vec<Value> {
    value
        .split('\\')
        .filter(|v| !v.is_empty())
        .filter_map(|v| match vr {
            "PN" => Some(person_name(v)),
            // An IS that does not parse is left out rather than sent as a string.
            "IS" => v.trim().parse::<i64>().ok().map(Value::from),
            _ => Some(Value::String(v.to_owned())),
        })
        .collect()
}

/// One result as a DICOM JSON object, with its Retrieve URL when it has one.
pub fn dataset(found: &QueryMatch, retrieve_url: Option<String>) -> Value {
    let mut object = Map::new();
    for (attribute, value) in &found.values {
        let vr = attribute.vr();
        let values = values(vr, value);
        let mut element = Map::new();
        element.insert("vr".into(), Value::String(vr.into()));
        if !values.is_empty() {
            element.insert("Value".into(), Value::Array(values));
        }
        object.insert(tag_key(*attribute), Value::Object(element));
    }
    if let Some(url) = retrieve_url {
        object.insert("00081190".into(), json!({ "vr": "UR", "Value": [url] }));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_component_group_objects() {
        let mut found = QueryMatch::default();
        found.values.insert(Attribute::PatientName, "Yamada^Tarou=山田^太郎=やまだ^たろう".into());
        found.values.insert(Attribute::ModalitiesInStudy, "CT\\SR".into());
        found.values.insert(Attribute::NumberOfStudyRelatedInstances, "4".into());
        found.values.insert(Attribute::StudyDescription, String::new());
        let json = dataset(&found, Some("http://h/dicom-web/studies/1.2".into()));
        assert_eq!(
            json,
            json!({
                "00081030": { "vr": "LO" },
                "00080061": { "vr": "CS", "Value": ["CT", "SR"] },
                "00081190": { "vr": "UR", "Value": ["http://h/dicom-web/studies/1.2"] },
                "00100010": { "vr": "PN", "Value": [{
                    "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"
                }] },
                "00201208": { "vr": "IS", "Value": [4] },
            })
        );
    }
}
