//! HL7 FHIR R4 (JSON) under `/fhir`, over the master patient index: `Patient/$match` and
//! `Patient` read so far. Errors are `OperationOutcome` resources.
//!
//! A `Patient` is one facility's record: its id is the record's, its identifier the
//! facility's patient ID, its name in JP Core's form (one `HumanName` per representation:
//! IDE kanji, SYL kana, ABC romaji), and `link` (`seealso`) points at the same person's
//! records the caller may see.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_domain::ErrorKind;
use renkei_domain::model::Principal;
use renkei_domain::mpi::{PatientRecord, RecordId};
use renkei_domain::names::PersonName;
use renkei_service::{Demographics, Grade, PatientMatch, ServiceError};
use serde_json::{Value, json};

use crate::AppState;

const MATCH_GRADE: &str = "http://hl7.org/fhir/StructureDefinition/match-grade";
const REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
/// Renkei's extension: a match score taken apart, one sub-extension per field.
const EXPLANATION: &str = "urn:renkei:fhir:match-explanation";
/// The identifier system of a facility's patient IDs.
fn identifier_system(facility: &str) -> String {
    format!("urn:renkei:facility:{facility}:patient-id")
}

/// A FHIR JSON response.
struct Fhir(StatusCode, Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let mut response = (self.0, self.1.to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
        response
    }
}

/// An `OperationOutcome` with one issue.
fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
    });
    Fhir(status, body).into_response()
}

fn service_outcome(error: ServiceError) -> Response {
    match error.kind {
        ErrorKind::NotFound | ErrorKind::Forbidden => outcome(StatusCode::NOT_FOUND, "not-found", "no such resource"),
        ErrorKind::Invalid => outcome(StatusCode::BAD_REQUEST, "invalid", &error.message),
        ErrorKind::Conflict => outcome(StatusCode::CONFLICT, "conflict", &error.message),
        ErrorKind::OutOfResources | ErrorKind::Unavailable => {
            outcome(StatusCode::SERVICE_UNAVAILABLE, "transient", &error.message)
        }
    }
}

/// `GET /fhir/Patient/{id}`.
pub async fn patient_read(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return outcome(StatusCode::NOT_FOUND, "not-found", "no such resource");
    };
    let record = match state.archive.patient_record(&principal, RecordId(id)).await {
        Ok(record) => record,
        Err(error) => return service_outcome(error),
    };
    match state.archive.linked_records(&principal, &record).await {
        Ok(linked) => Fhir(StatusCode::OK, patient(&record, &linked)).into_response(),
        Err(error) => service_outcome(error),
    }
}

/// `POST /fhir/Patient/$match`: a `Parameters` with `resource` (a Patient: name, birthDate,
/// gender), and optionally `onlyCertainMatches` and `count`. Answers a `searchset` Bundle,
/// best match first, each with its score, match grade and field-by-field explanation.
pub async fn patient_match(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => return outcome(StatusCode::BAD_REQUEST, "invalid", &format!("not JSON: {error}")),
    };
    let (resource, only_certain, count) = match match_parameters(&request) {
        Ok(parameters) => parameters,
        Err(message) => return outcome(StatusCode::BAD_REQUEST, "invalid", &message),
    };
    let wanted = demographics(resource);
    if wanted.name.is_empty() && wanted.birth_date.is_empty() {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "the Patient needs at least a name or a birthDate");
    }
    let matches = match state.archive.match_patient(&principal, &wanted, count, only_certain).await {
        Ok(matches) => matches,
        Err(error) => return service_outcome(error),
    };
    let mut entries = Vec::with_capacity(matches.len());
    for found in &matches {
        let linked = match state.archive.linked_records(&principal, &found.record).await {
            Ok(linked) => linked,
            Err(error) => return service_outcome(error),
        };
        entries.push(entry(found, &linked));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "entry": entries,
    });
    Fhir(StatusCode::OK, bundle).into_response()
}

/// The Patient to match, whether to return certain matches only, and how many at most.
fn match_parameters(request: &Value) -> Result<(&Value, bool, usize), String> {
    if request["resourceType"] == "Patient" {
        return Ok((request, false, 10));
    }
    if request["resourceType"] != "Parameters" {
        return Err("expected a Parameters resource".into());
    }
    let parameters = request["parameter"].as_array().ok_or("Parameters without parameter")?;
    let named = |name: &str| parameters.iter().find(|p| p["name"] == name);
    let resource = named("resource").map(|p| &p["resource"]).filter(|r| r["resourceType"] == "Patient");
    let resource = resource.ok_or("the resource parameter must hold a Patient")?;
    let only_certain = named("onlyCertainMatches").and_then(|p| p["valueBoolean"].as_bool()).unwrap_or(false);
    let count = match named("count").map(|p| &p["valueInteger"]) {
        None => 10,
        Some(value) => match value.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => return Err("count must be an integer from 1 to 100".into()),
        },
    };
    Ok((resource, only_certain, count))
}

/// A FHIR Patient's name, birth date and gender as the matcher reads them. Each HumanName
/// goes to the component group its JP Core representation (or, without one, its script)
/// says: ABC alphabetic, IDE ideographic, SYL phonetic.
fn demographics(patient: &Value) -> Demographics {
    let mut groups = [String::new(), String::new(), String::new()];
    for name in patient["name"].as_array().into_iter().flatten() {
        let family = name["family"].as_str().unwrap_or_default();
        let given: Vec<&str> = name["given"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let written = if family.is_empty() && given.is_empty() {
            name["text"].as_str().unwrap_or_default().to_owned()
        } else {
            format!("{family}^{}", given.join(" "))
        };
        let representation = name["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == REPRESENTATION)
            .and_then(|e| e["valueCode"].as_str());
        let group = match representation {
            Some("ABC") => 0,
            Some("IDE") => 1,
            Some("SYL") => 2,
            _ if written
                .chars()
                .any(|c| ('\u{3041}'..='\u{30FA}').contains(&c) || ('\u{FF66}'..='\u{FF9D}').contains(&c)) =>
            {
                2
            }
            _ if written.chars().all(|c| c.is_ascii() || c.is_whitespace()) => 0,
            _ => 1,
        };
        if groups[group].is_empty() {
            groups[group] = written;
        }
    }
    let name = groups.join("=").trim_end_matches('=').to_owned();
    Demographics {
        name,
        birth_date: patient["birthDate"].as_str().unwrap_or_default().to_owned(),
        sex: patient["gender"].as_str().unwrap_or_default().to_owned(),
    }
}

fn entry(found: &PatientMatch, linked: &[PatientRecord]) -> Value {
    let explanation = &found.explanation;
    let grade = match explanation.grade {
        Grade::Certain => "certain",
        Grade::Probable => "probable",
        Grade::Possible => "possible",
        Grade::CertainlyNot => "certainly-not",
    };
    let terms: Vec<Value> = std::iter::once(json!({
        "url": "prior",
        "valueString": format!("{:+.1} bits", explanation.prior_weight),
    }))
    .chain(
        explanation
            .terms
            .iter()
            .map(|t| json!({ "url": t.field.name(), "valueString": format!("{} ({:+.1} bits)", t.level, t.weight) })),
    )
    .collect();
    json!({
        "fullUrl": format!("Patient/{}", found.record.id.0),
        "resource": patient(&found.record, linked),
        "search": {
            "mode": "match",
            "score": (explanation.probability * 10_000.0).round() / 10_000.0,
            "extension": [
                { "url": MATCH_GRADE, "valueCode": grade },
                { "url": EXPLANATION, "extension": terms },
            ],
        },
    })
}

/// A record as a JP Core–style Patient.
fn patient(record: &PatientRecord, linked: &[PatientRecord]) -> Value {
    let name = PersonName::parse(&record.name);
    let names: Vec<Value> = [("ABC", &name.alphabetic), ("IDE", &name.ideographic), ("SYL", &name.phonetic)]
        .into_iter()
        .filter(|(_, group)| !group.is_empty())
        .map(|(code, group)| {
            let (family, given) = group.split_once('^').unwrap_or((group.as_str(), ""));
            let given: Vec<&str> = given.split('^').next().into_iter().filter(|g| !g.is_empty()).collect();
            let text =
                [family, &given.join(" ")].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ");
            json!({
                "extension": [{ "url": REPRESENTATION, "valueCode": code }],
                "use": "official",
                "text": text,
                "family": family,
                "given": given,
            })
        })
        .collect();
    let mut patient = json!({
        "resourceType": "Patient",
        "id": record.id.0.to_string(),
        "identifier": [{ "system": identifier_system(record.facility.as_str()), "value": record.patient_id }],
        "name": names,
    });
    if let Some(gender) = match record.sex.as_str() {
        "M" => Some("male"),
        "F" => Some("female"),
        "O" => Some("other"),
        _ => None,
    } {
        patient["gender"] = json!(gender);
    }
    let date = &record.birth_date;
    if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        patient["birthDate"] = json!(format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]));
    }
    if !record.issuer.is_empty() {
        patient["identifier"][0]["assigner"] = json!({ "display": record.issuer });
    }
    if !linked.is_empty() {
        patient["link"] = linked
            .iter()
            .map(|other| json!({ "other": { "reference": format!("Patient/{}", other.id.0) }, "type": "seealso" }))
            .collect();
    }
    patient
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jp_core_names_go_to_their_component_groups() {
        let patient = json!({
            "resourceType": "Patient",
            "name": [
                { "extension": [{ "url": REPRESENTATION, "valueCode": "IDE" }], "family": "山田", "given": ["花子"] },
                { "extension": [{ "url": REPRESENTATION, "valueCode": "SYL" }], "family": "ヤマダ", "given": ["ハナコ"] },
                { "family": "Yamada", "given": ["Hanako"] },
            ],
            "birthDate": "1980-01-02",
            "gender": "female",
        });
        let wanted = demographics(&patient);
        assert_eq!(wanted.name, "Yamada^Hanako=山田^花子=ヤマダ^ハナコ");
        assert_eq!((wanted.birth_date.as_str(), wanted.sex.as_str()), ("1980-01-02", "female"));
        // Without representations, the script decides; kana alone is the phonetic group.
        let kana = demographics(&json!({ "name": [{ "text": "ﾔﾏﾀﾞ ﾊﾅｺ" }] }));
        assert_eq!(kana.name, "==ﾔﾏﾀﾞ ﾊﾅｺ");
    }

    #[test]
    fn match_parameters_are_read_and_checked() {
        let request = json!({ "resourceType": "Parameters", "parameter": [
            { "name": "resource", "resource": { "resourceType": "Patient" } },
            { "name": "onlyCertainMatches", "valueBoolean": true },
            { "name": "count", "valueInteger": 3 },
        ]});
        let (_, only_certain, count) = match_parameters(&request).expect("valid");
        assert!(only_certain);
        assert_eq!(count, 3);
        let wrong = json!({ "resourceType": "Parameters", "parameter": [{ "name": "count", "valueInteger": 0 }] });
        assert!(match_parameters(&wrong).is_err());
        assert!(match_parameters(&json!({ "resourceType": "Bundle" })).is_err());
    }
}
