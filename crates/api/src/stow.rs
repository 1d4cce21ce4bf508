//! STOW-RS (PS3.18 10.5): `multipart/related; type="application/dicom"` bodies, each part a
//! Part-10 object, streamed through the same ingest pipeline as C-STORE.
//!
//! Every part is validated and made durable first (staged, outside the content-addressed
//! store); only when the whole body has been read cleanly are the staged parts published
//! and indexed. A body that turns out malformed keeps nothing, on disk or in the index.

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_domain::model::Principal;
use renkei_domain::{ErrorKind, FacilityId, Uid};
use renkei_service::{Expected, IngestError, Part10Prefix, Staged, part10_prefix};
use serde_json::{Value, json};

use crate::AppState;
use crate::problem::Problem;

/// The largest request accepted, by its Content-Length.
const MAX_REQUEST_BYTES: u64 = 64 << 30;
/// File meta groups are small; one larger than this is not a DICOM object.
const MAX_META_BYTES: usize = 1 << 20;

/// PS3.18 Failure Reason (0008,1197) values used here.
mod reason {
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    pub const DOES_NOT_MATCH: u16 = 0xA900;
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

pub async fn store(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    stow(&state, &principal, &headers, None, body).await
}

pub async fn store_in_study(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let study = Uid::new(&study).map_err(|_| Problem::bad_request("the study in the URL is not a UID"))?;
    stow(&state, &principal, &headers, Some(study), body).await
}

/// The boundary of a `multipart/related` body of `application/dicom` parts.
fn boundary(headers: &HeaderMap) -> Result<String, Problem> {
    let unsupported =
        || Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send multipart/related; type=\"application/dicom\"");
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    let mut parts = content_type.split(';');
    if !parts.next().unwrap_or("").trim().eq_ignore_ascii_case("multipart/related") {
        return Err(unsupported());
    }
    let mut boundary = None;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else { continue };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "type" if !value.eq_ignore_ascii_case("application/dicom") => return Err(unsupported()),
            "boundary" => boundary = Some(value.to_owned()),
            _ => {}
        }
    }
    boundary.filter(|b| !b.is_empty()).ok_or_else(|| Problem::bad_request("the multipart body has no boundary"))
}

fn failure_reason(error: &IngestError) -> u16 {
    match error {
        IngestError::Malformed(_) => reason::CANNOT_UNDERSTAND,
        IngestError::DoesNotMatch(_) => reason::DOES_NOT_MATCH,
        IngestError::Service(e) if e.kind == ErrorKind::OutOfResources => reason::OUT_OF_RESOURCES,
        IngestError::Service(_) => reason::PROCESSING_FAILURE,
    }
}

/// A part that was not stored, as reported in the Failed SOP Sequence.
struct Failure {
    sop_class: Option<Uid>,
    sop_instance: Option<Uid>,
    reason: u16,
}

enum Part {
    Staged(Box<Staged>),
    Failed(Failure),
}

/// Reads one part to its end, staging it if it is a valid DICOM object.
async fn receive_part(
    state: &AppState,
    facility: &FacilityId,
    study: &Option<Uid>,
    field: &mut multer::Field<'_>,
) -> Result<Part, multer::Error> {
    let not_dicom = Failure { sop_class: None, sop_instance: None, reason: reason::CANNOT_UNDERSTAND };
    let is_dicom = field.content_type().is_none_or(|m| m.essence_str().eq_ignore_ascii_case("application/dicom"));
    let mut prefix = Vec::new();
    let header = loop {
        match part10_prefix(&prefix) {
            Part10Prefix::NeedMore(needed) if needed <= MAX_META_BYTES && is_dicom => match field.chunk().await? {
                Some(chunk) => prefix.extend_from_slice(&chunk),
                None => break Part10Prefix::NotDicom,
            },
            Part10Prefix::NeedMore(_) => break Part10Prefix::NotDicom,
            found => break found,
        }
    };
    let Part10Prefix::Header { dataset_offset, transfer_syntax, sop_class, sop_instance } = header else {
        while field.chunk().await?.is_some() {}
        return Ok(Part::Failed(not_dicom));
    };
    let failed =
        |reason| Part::Failed(Failure { sop_class: sop_class.clone(), sop_instance: sop_instance.clone(), reason });
    let mut ingest = match state.archive.begin_ingest(facility.clone(), transfer_syntax).await {
        Ok(ingest) => ingest,
        Err(_) => {
            while field.chunk().await?.is_some() {}
            return Ok(failed(reason::CANNOT_UNDERSTAND));
        }
    };
    let mut failure = ingest.write(&prefix[dataset_offset..]).await.err();
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                ingest.abort().await;
                return Err(error);
            }
        };
        if failure.is_none() {
            failure = ingest.write(&chunk).await.err();
        }
    }
    if let Some(error) = failure {
        ingest.abort().await;
        return Ok(failed(failure_reason(&error)));
    }
    let expected =
        Expected { sop_class_uid: sop_class.clone(), sop_instance_uid: sop_instance.clone(), study_uid: study.clone() };
    Ok(match ingest.finish_staged(&expected).await {
        Ok(staged) => Part::Staged(Box::new(staged)),
        Err(error) => {
            tracing::info!(reason = %error, "STOW-RS part refused");
            failed(failure_reason(&error))
        }
    })
}

fn uid_element(uid: &Uid) -> Value {
    json!({ "vr": "UI", "Value": [uid.as_str()] })
}

async fn stow(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    study: Option<Uid>,
    body: Body,
) -> Result<Response, Problem> {
    if !principal.may_store() {
        return Err(Problem::new(StatusCode::FORBIDDEN, "this token may not store"));
    }
    let Some(facility) = principal.facility.clone() else {
        return Err(Problem::bad_request(
            "an administrator's token belongs to no facility; store with a facility token",
        ));
    };
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|length| length > MAX_REQUEST_BYTES) {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the request is larger than this archive accepts"));
    }
    let boundary = boundary(headers)?;
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut staged = Vec::new();
    let mut failures = Vec::new();
    let read_cleanly: Result<(), multer::Error> = async {
        while let Some(mut field) = multipart.next_field().await? {
            match receive_part(state, &facility, &study, &mut field).await? {
                Part::Staged(part) => staged.push(*part),
                Part::Failed(failure) => failures.push(failure),
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = read_cleanly {
        // Parts that arrived whole are dropped with the rest of the body.
        for part in staged {
            part.discard().await;
        }
        return Err(Problem::bad_request(format!("malformed multipart body: {error}")));
    }
    if staged.is_empty() && failures.is_empty() {
        return Err(Problem::bad_request("the multipart body has no parts"));
    }
    // The whole body was read cleanly: index what was staged, all in the same group commits.
    let mut commits = tokio::task::JoinSet::new();
    for part in staged {
        let archive = state.archive.clone();
        commits.spawn(async move {
            let (class, instance) = (part.sop_class_uid().clone(), part.sop_instance_uid().clone());
            (class, instance, part.study_uid().clone(), archive.commit_staged(part).await)
        });
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let mut referenced = Vec::new();
    while let Some(joined) = commits.join_next().await {
        let Ok((class, instance, study_uid, result)) = joined else { continue };
        match result {
            Ok(_) => referenced.push(json!({
                "00081150": uid_element(&class),
                "00081155": uid_element(&instance),
                "00081190": { "vr": "UR", "Value": [format!("http://{host}/dicom-web/studies/{study_uid}")] },
            })),
            Err(error) => failures.push(Failure {
                sop_class: Some(class),
                sop_instance: Some(instance),
                reason: failure_reason(&error),
            }),
        }
    }
    let failed: Vec<Value> = failures
        .iter()
        .map(|f| {
            let mut item = serde_json::Map::new();
            if let Some(class) = &f.sop_class {
                item.insert("00081150".into(), uid_element(class));
            }
            if let Some(instance) = &f.sop_instance {
                item.insert("00081155".into(), uid_element(instance));
            }
            item.insert("00081197".into(), json!({ "vr": "US", "Value": [f.reason] }));
            Value::Object(item)
        })
        .collect();
    let mut body = serde_json::Map::new();
    if let Some(study) = &study {
        body.insert(
            "00081190".into(),
            json!({ "vr": "UR", "Value": [format!("http://{host}/dicom-web/studies/{study}")] }),
        );
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({ "vr": "SQ", "Value": failed }));
    }
    if !referenced.is_empty() {
        body.insert("00081199".into(), json!({ "vr": "SQ", "Value": referenced }));
    }
    let status = match (referenced.is_empty(), failed.is_empty()) {
        (_, true) => StatusCode::OK,
        (true, false) => StatusCode::CONFLICT,
        (false, false) => StatusCode::ACCEPTED,
    };
    let mut response = (status, Value::Object(body).to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/dicom+json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("header"));
        headers
    }

    #[test]
    fn content_types() {
        let ok = boundary(&headers("multipart/related; type=\"application/dicom\"; boundary=abc123"));
        assert_eq!(ok.ok().as_deref(), Some("abc123"));
        assert_eq!(boundary(&headers("Multipart/Related; boundary=\"x y\"")).ok().as_deref(), Some("x y"));
        let wrong_type = boundary(&headers("multipart/related; type=\"application/dicom+xml\"; boundary=a"));
        assert_eq!(wrong_type.err().map(|p| p.status), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        let form = boundary(&headers("multipart/form-data; boundary=a"));
        assert_eq!(form.err().map(|p| p.status), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        let no_boundary = boundary(&headers("multipart/related; type=\"application/dicom\""));
        assert_eq!(no_boundary.err().map(|p| p.status), Some(StatusCode::BAD_REQUEST));
    }
}
