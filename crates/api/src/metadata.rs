//! WADO-RS metadata (PS3.18 10.4.1.1.2): every attribute of every instance as DICOM JSON,
//! text decoded through the character-set layer, large and binary values as BulkDataURIs
//! served by [`bulkdata`].

use std::path::PathBuf;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use renkei_dicom::Syntax;
use renkei_dicom::charset::{SpecificCharacterSet, TextKind};
use renkei_dicom::dictionary::implicit_vr;
use renkei_dicom::tags::SPECIFIC_CHARACTER_SET;
use renkei_dicom::walk::{Node, NodeValue, tree_file};
use renkei_domain::model::{Principal, StoredInstance};
use renkei_domain::query::{Attribute, QueryLevel};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::multipart;
use crate::problem::Problem;
use crate::wado::{instances_under, visible_instance};
use renkei_domain::sharing::Shared;

/// Values larger than this become BulkDataURIs.
const MAX_INLINE: u32 = 1024;

pub async fn study(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, Problem> {
    metadata(&state, &principal, &headers, QueryLevel::Study, vec![(Attribute::StudyInstanceUid, study)]).await
}

pub async fn series(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let keys = vec![(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    metadata(&state, &principal, &headers, QueryLevel::Series, keys).await
}

pub async fn instance(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let keys = vec![
        (Attribute::StudyInstanceUid, study),
        (Attribute::SeriesInstanceUid, series),
        (Attribute::SopInstanceUid, instance),
    ];
    metadata(&state, &principal, &headers, QueryLevel::Image, keys).await
}

async fn metadata(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    level: QueryLevel,
    keys: Vec<(Attribute, String)>,
) -> Result<Response, Problem> {
    let instances = instances_under(state, principal, level, &keys).await?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_owned();
    // Cold instances are recalled to disk first.
    let mut blobs: Vec<(StoredInstance, PathBuf)> = Vec::with_capacity(instances.len());
    for instance in instances {
        let path = state.archive.local_path(&instance).await?;
        blobs.push((instance, path));
    }
    // Parsing and JSON writing are CPU work: off the runtime, and over every core for a
    // series or study.
    let json = tokio::task::spawn_blocking(move || metadata_json(&blobs, &host))
        .await
        .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "metadata task failed"))?
        .map_err(|error| {
            tracing::warn!(%error, "reading an instance for metadata failed");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "a stored instance could not be read; see server log")
        })?;
    let mut response = json.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/dicom+json"));
    Ok(response)
}

/// The DICOM JSON array of `blobs`' metadata, written by up to one thread per core.
fn metadata_json(blobs: &[(StoredInstance, PathBuf)], host: &str) -> Result<String, std::io::Error> {
    const PER_THREAD_AT_LEAST: usize = 16;
    let write = |share: &[(StoredInstance, PathBuf)]| -> Result<Vec<String>, std::io::Error> {
        share.iter().map(|(instance, path)| Ok(instance_json(instance, path, host)?.to_string())).collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (blobs.len() / PER_THREAD_AT_LEAST).clamp(1, cores);
    let shares: Vec<Vec<String>> = if threads == 1 {
        vec![write(blobs)?]
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> =
                blobs.chunks(blobs.len().div_ceil(threads)).map(|share| scope.spawn(move || write(share))).collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap_or_else(|_| Err(std::io::Error::other("metadata worker panicked"))))
                .collect::<Result<_, _>>()
        })?
    };
    let mut json = String::from("[");
    for (n, instance) in shares.iter().flatten().enumerate() {
        if n > 0 {
            json.push(',');
        }
        json.push_str(instance);
    }
    json.push(']');
    Ok(json)
}

fn instance_url(instance: &StoredInstance, host: &str) -> String {
    format!(
        "http://{host}/dicom-web/studies/{}/series/{}/instances/{}",
        instance.study_uid, instance.series_uid, instance.sop_instance_uid
    )
}

fn instance_json(instance: &StoredInstance, path: &std::path::Path, host: &str) -> Result<Value, std::io::Error> {
    let syntax = Syntax::from_uid(instance.transfer_syntax_uid.as_str()).unwrap_or(Syntax::EXPLICIT_LE);
    let mut file = std::fs::File::open(path)?;
    let nodes = tree_file(&mut file, syntax, MAX_INLINE, &implicit_vr).map_err(std::io::Error::other)?;
    let charset = nodes
        .iter()
        .find(|n| n.tag == SPECIFIC_CHARACTER_SET)
        .and_then(|n| match &n.value {
            NodeValue::Bytes(bytes) => Some(SpecificCharacterSet::parse(&renkei_dicom::text::ascii(bytes))),
            _ => None,
        })
        .unwrap_or_default();
    let base = instance_url(instance, host);
    let context = Context { charset, big_endian: syntax.big_endian, base };
    let mut json = object(&nodes, &context);
    if let (Some(shared), Value::Object(members)) = (&instance.shared, &mut json) {
        seen_under_local_patient(members, shared);
    }
    Ok(json)
}

/// A shared instance's metadata as the receiving facility sees it: under its own patient,
/// with the origin's ID and issuer in Other Patient IDs (as the relabelled object has them).
fn seen_under_local_patient(members: &mut Map<String, Value>, shared: &Shared) {
    let local = &shared.local;
    let text = |vr: &str, value: &str| {
        if value.is_empty() { json!({ "vr": vr }) } else { json!({ "vr": vr, "Value": [value] }) }
    };
    members.insert("00100010".into(), json!({ "vr": "PN", "Value": [crate::json::person_name(&local.name)] }));
    members.insert("00100020".into(), text("LO", &local.patient_id));
    members.insert("00100021".into(), text("LO", &local.issuer));
    members.insert("00100030".into(), text("DA", &local.birth_date));
    members.insert("00100040".into(), text("CS", &local.sex));
    let issuer = shared.origin_issuer();
    let other = json!({
        "00100020": text("LO", &shared.origin_patient_id),
        "00100021": text("LO", issuer),
        "00100022": text("CS", "TEXT"),
    });
    members.insert("00101002".into(), json!({ "vr": "SQ", "Value": [other] }));
}

struct Context {
    charset: SpecificCharacterSet,
    big_endian: bool,
    base: String,
}

fn object(nodes: &[Node], context: &Context) -> Value {
    let mut members = Map::new();
    for node in nodes {
        let vr = std::str::from_utf8(&node.vr).unwrap_or("UN");
        let mut element = Map::new();
        element.insert("vr".into(), Value::String(vr.into()));
        match &node.value {
            NodeValue::Items(items) => {
                let items: Vec<Value> = items.iter().map(|item| object(item, context)).collect();
                if !items.is_empty() {
                    element.insert("Value".into(), Value::Array(items));
                }
            }
            NodeValue::Bulk { offset, length } => {
                let uri = format!("{}/bulkdata/{offset}-{length}", context.base);
                element.insert("BulkDataURI".into(), Value::String(uri));
            }
            NodeValue::Bytes(bytes) => {
                if let Some((key, value)) = value(vr, bytes, context) {
                    element.insert(key.into(), value);
                }
            }
        }
        members.insert(format!("{:08X}", node.tag), Value::Object(element));
    }
    Value::Object(members)
}

/// The JSON member ("Value" or "InlineBinary") for a held value, if it is not empty.
fn value(vr: &str, bytes: &[u8], context: &Context) -> Option<(&'static str, Value)> {
    if bytes.is_empty() {
        return None;
    }
    let text = |kind| context.charset.decode_values(bytes, kind).0;
    let strings = |values: Vec<String>| Value::Array(values.into_iter().map(Value::String).collect());
    let numbers =
        |size: usize, read: &dyn Fn(&[u8]) -> Value| Value::Array(bytes.chunks_exact(size).map(read).collect());
    let be = context.big_endian;
    let value = match vr {
        "AE" | "AS" | "CS" | "DA" | "DT" | "TM" | "UI" => {
            strings(bytes.split(|b| *b == b'\\').map(renkei_dicom::text::ascii).collect())
        }
        "UR" => strings(vec![renkei_dicom::text::ascii(bytes)]),
        "LO" | "SH" | "UC" => strings(text(TextKind::MultiValued)),
        "ST" | "LT" | "UT" => strings(text(TextKind::Text)),
        "PN" => Value::Array(text(TextKind::PersonName).iter().map(|name| crate::json::person_name(name)).collect()),
        "IS" => Value::Array(
            text(TextKind::MultiValued).iter().filter_map(|v| v.parse::<i64>().ok()).map(Value::from).collect(),
        ),
        "DS" => Value::Array(
            text(TextKind::MultiValued).iter().filter_map(|v| v.parse::<f64>().ok()).map(Value::from).collect(),
        ),
        "US" => {
            numbers(2, &|b| json!(if be { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) }))
        }
        "SS" => {
            numbers(2, &|b| json!(if be { i16::from_be_bytes([b[0], b[1]]) } else { i16::from_le_bytes([b[0], b[1]]) }))
        }
        "UL" => numbers(4, &|b| {
            let b = [b[0], b[1], b[2], b[3]];
            json!(if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
        }),
        "SL" => numbers(4, &|b| {
            let b = [b[0], b[1], b[2], b[3]];
            json!(if be { i32::from_be_bytes(b) } else { i32::from_le_bytes(b) })
        }),
        "FL" => numbers(4, &|b| {
            let b = [b[0], b[1], b[2], b[3]];
            json!(if be { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) })
        }),
        "FD" => numbers(8, &|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            json!(if be { f64::from_be_bytes(a) } else { f64::from_le_bytes(a) })
        }),
        "AT" => numbers(4, &|b| {
            let (group, element) = if be {
                (u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]]))
            } else {
                (u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]]))
            };
            json!(format!("{group:04X}{element:04X}"))
        }),
        // OB, OD, OF, OL, OV, OW, UN and the 64-bit integers: bytes, as they are encoded.
        _ => return Some(("InlineBinary", Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))),
    };
    Some(("Value", value))
}

/// Whether a byte range of a stored data set touches its patient module (group 0010).
fn overlaps_patient_module(path: &std::path::Path, syntax: Syntax, offset: u64, length: u64) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let extents = renkei_dicom::walk::extents_file(&mut file, syntax).map_err(std::io::Error::other)?;
    Ok(extents.iter().filter(|e| e.tag >> 16 == 0x0010).any(|e| offset < e.end && e.start < offset + length))
}

/// `/bulkdata/{offset}-{length}` of an instance: a range of its data set, as
/// `multipart/related; type="application/octet-stream"`.
pub async fn bulkdata(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((study, series, instance, range)): Path<(String, String, String, String)>,
) -> Result<Response, Problem> {
    let (offset, length) = range
        .split_once('-')
        .and_then(|(o, l)| Some((o.parse::<u64>().ok()?, l.parse::<u64>().ok()?)))
        .ok_or_else(Problem::not_found)?;
    let stored = visible_instance(&state, &principal, study, series, instance).await?;
    if offset.checked_add(length).is_none_or(|end| end > stored.size.max(u64::MAX / 2)) || length > 1 << 31 {
        return Err(Problem::not_found());
    }
    let syntax = Syntax::from_uid(stored.transfer_syntax_uid.as_str()).unwrap_or(Syntax::EXPLICIT_LE);
    let path = state.archive.local_path(&stored).await?;
    let shared = stored.shared.is_some();
    let bytes = tokio::task::spawn_blocking(move || {
        // A shared object goes out under the viewer's patient: none of its stored patient
        // module may be read around that.
        if shared && overlaps_patient_module(&path, syntax, offset, length)? {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        renkei_imaging::read_range(&path, syntax, offset, length)
    })
    .await
    .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "bulk data task failed"))?
    .map_err(|_| Problem::not_found())?;
    let part = ("application/octet-stream".to_owned(), bytes);
    Ok(multipart::response("application/octet-stream", "renkei-bulk-boundary", [part]))
}
