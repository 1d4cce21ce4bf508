//! WADO-RS retrieval (PS3.18 10.4) of studies, series and instances as
//! `multipart/related; type="application/dicom"`: each part a Part-10 object whose data set
//! is the stored bytes, unchanged. The body is streamed from the blob files through a small
//! bounded channel, so a study of any size never sits in memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use renkei_domain::model::{Principal, StoredInstance};
use renkei_domain::query::{Attribute, Matcher, Query, QueryKey, QueryLevel};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::visible_facilities;
use crate::multipart;
use crate::problem::Problem;

const BOUNDARY: &str = "renkei-wado-boundary";
/// Bytes read from a blob per chunk of the response.
const CHUNK: usize = 256 * 1024;

pub async fn study(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, Problem> {
    retrieve(&state, &principal, &headers, QueryLevel::Study, &[(Attribute::StudyInstanceUid, study)]).await
}

pub async fn series(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let keys = [(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    retrieve(&state, &principal, &headers, QueryLevel::Series, &keys).await
}

pub async fn instance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let keys = [
        (Attribute::StudyInstanceUid, study),
        (Attribute::SeriesInstanceUid, series),
        (Attribute::SopInstanceUid, instance),
    ];
    retrieve(&state, &principal, &headers, QueryLevel::Image, &keys).await
}

/// The transfer syntax the client asks for: `None` means as stored (`transfer-syntax=*`,
/// or no preference). Renkei does not transcode yet, so another syntax is honoured only for
/// objects stored in it.
fn requested_syntax(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let not_acceptable =
        || Problem::new(StatusCode::NOT_ACCEPTABLE, "instances are multipart/related; type=\"application/dicom\"");
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("");
        if essence == "*/*" {
            return Ok(None);
        }
        if !essence.eq_ignore_ascii_case("multipart/related") {
            continue;
        }
        let mut dicom = true;
        let mut syntax = None;
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "type" => dicom = value.eq_ignore_ascii_case("application/dicom"),
                "transfer-syntax" if value != "*" => syntax = Some(value.to_owned()),
                _ => {}
            }
        }
        if dicom {
            return Ok(syntax);
        }
    }
    Err(not_acceptable())
}

/// The current instances under the entity the URL names, at every facility the principal
/// can see; not found if there are none.
pub(crate) async fn instances_under(
    state: &AppState,
    principal: &Principal,
    level: QueryLevel,
    keys: &[(Attribute, String)],
) -> Result<Vec<StoredInstance>, Problem> {
    let mut query = Query::new(level, Vec::new());
    for (attribute, value) in keys {
        let matcher = Matcher::parse(*attribute, value).map_err(|e| Problem::bad_request(e.to_string()))?;
        if !matches!(matcher, Matcher::Exact(_)) {
            return Err(Problem::bad_request(format!("{} in the URL must be one UID", attribute.keyword())));
        }
        query.keys.push(QueryKey { attribute: *attribute, matcher });
    }
    let mut instances = Vec::new();
    for facility in &visible_facilities(state, principal).await? {
        instances.extend(state.archive.retrieve(facility, &query).await?);
    }
    if instances.is_empty() {
        return Err(Problem::not_found());
    }
    Ok(instances)
}

/// One instance named by its URL, if the principal can see it.
pub(crate) async fn visible_instance(
    state: &AppState,
    principal: &Principal,
    study: String,
    series: String,
    instance: String,
) -> Result<StoredInstance, Problem> {
    let keys = [
        (Attribute::StudyInstanceUid, study),
        (Attribute::SeriesInstanceUid, series),
        (Attribute::SopInstanceUid, instance),
    ];
    let mut found = instances_under(state, principal, QueryLevel::Image, &keys).await?;
    Ok(found.remove(0))
}

async fn retrieve(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    level: QueryLevel,
    keys: &[(Attribute, String)],
) -> Result<Response, Problem> {
    let syntax = requested_syntax(headers)?;
    let instances = instances_under(state, principal, level, keys).await?;
    if let Some(syntax) = &syntax
        && instances.iter().any(|i| i.transfer_syntax_uid.as_str() != syntax)
    {
        return Err(Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("not every instance is stored in {syntax}; ask for transfer-syntax=* to get them as stored"),
        ));
    }
    let (sender, receiver) = mpsc::channel(4);
    let archive = state.archive.clone();
    tokio::spawn(async move {
        if let Err(error) = stream_instances(&archive, instances, &sender).await {
            // The client sees a truncated body; the cause goes to the log.
            tracing::warn!(%error, "WADO-RS retrieval stopped");
            let _ = sender.send(Err(std::io::Error::other("retrieval failed"))).await;
        }
    });
    let mut response = Body::from_stream(ChannelBody(receiver)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, multipart::content_type("application/dicom", BOUNDARY));
    Ok(response)
}

type Chunk = Result<Bytes, std::io::Error>;

async fn stream_instances(
    archive: &renkei_service::Archive,
    instances: Vec<StoredInstance>,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for instance in instances {
        let mut file = archive.open_instance(&instance).await?;
        let ts = instance.transfer_syntax_uid.as_str();
        let mut head = multipart::part_head(BOUNDARY, &format!("application/dicom; transfer-syntax={ts}")).into_bytes();
        head.extend(renkei_dicom::write::part10_header(
            instance.sop_class_uid.as_str(),
            instance.sop_instance_uid.as_str(),
            ts,
        ));
        sender.send(Ok(Bytes::from(head))).await?;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let read = file.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            chunk.truncate(read);
            sender.send(Ok(Bytes::from(chunk))).await?;
        }
        sender.send(Ok(Bytes::from_static(b"\r\n"))).await?;
    }
    sender.send(Ok(Bytes::from(multipart::end(BOUNDARY)))).await?;
    Ok(())
}

/// A response body fed by a bounded channel.
struct ChannelBody(mpsc::Receiver<Chunk>);

impl futures_core::Stream for ChannelBody {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn accept_headers() {
        assert_eq!(requested_syntax(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(
            requested_syntax(&accept("multipart/related; type=\"application/dicom\"; transfer-syntax=*")).ok(),
            Some(None)
        );
        assert_eq!(
            requested_syntax(&accept(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1"
            ))
            .ok(),
            Some(Some("1.2.840.10008.1.2.1".into()))
        );
        assert!(requested_syntax(&accept("application/dicom+json")).is_err());
        assert!(requested_syntax(&accept("multipart/related; type=\"image/jpeg\"")).is_err());
    }
}
