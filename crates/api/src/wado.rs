//! WADO-RS retrieval (PS3.18 10.4) of studies, series and instances as
//! `multipart/related; type="application/dicom"`: each part a Part-10 object. With
//! `transfer-syntax=*` (or the stored syntax) the data set is the stored bytes, unchanged;
//! otherwise it is transcoded to Explicit VR Little Endian, the default syntax, decoding
//! compressed pixel data. The body is streamed through a small bounded channel, so a study
//! of any size never sits in memory.

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use renkei_dicom::syntax::EXPLICIT_VR_LE;
use renkei_domain::model::{Principal, StoredInstance};
use renkei_domain::query::{Attribute, Matcher, Query, QueryKey, QueryLevel};
use renkei_imaging::transcode::{self, Transcoding};
use renkei_service::Transcoder;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::{reader, visible_facilities};
use crate::multipart::{self, Chunk};
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

/// The transfer syntaxes an Accept header allows for parts of one media type
/// (`application/dicom` for instances, `application/octet-stream` for frames).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Acceptable {
    /// `transfer-syntax=*`: as stored, whatever it is.
    any: bool,
    syntaxes: Vec<String>,
    /// No syntax was named anywhere: the default applies, Explicit VR Little Endian, and an
    /// object that cannot be decoded to it is sent as stored rather than refused.
    by_default: bool,
}

/// How one instance goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    AsStored,
    /// Transcoded to this native syntax, one of [`transcode::TARGETS`].
    Native(&'static str),
}

impl Acceptable {
    pub(crate) fn parse(headers: &HeaderMap, part_type: &str) -> Result<Self, Problem> {
        // Several Accept headers are one list (RFC 9110 5.3).
        let accept: Vec<&str> = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
        if accept.is_empty() {
            return Ok(Self::default_syntax());
        }
        let mut acceptable = Self::default();
        let mut type_at_all = false;
        let refused = |media: &str| {
            media.split(';').skip(1).filter_map(|p| p.split_once('=')).any(|(name, value)| {
                name.trim().eq_ignore_ascii_case("q") && value.trim().parse::<f64>().is_ok_and(|q| q == 0.0)
            })
        };
        for media in accept.iter().flat_map(|a| a.split(',')).filter(|media| !refused(media)) {
            let mut parts = media.split(';').map(str::trim);
            let essence = parts.next().unwrap_or("");
            if essence == "*/*" {
                acceptable.merge(Self::default_syntax());
                type_at_all = true;
                continue;
            }
            // A bare part type is taken as asking for a multipart of that type.
            let bare = essence.eq_ignore_ascii_case(part_type);
            if !bare && !essence.eq_ignore_ascii_case("multipart/related") {
                continue;
            }
            let (mut wanted, mut syntax) = (true, None);
            for parameter in parts {
                let Some((name, value)) = parameter.split_once('=') else { continue };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "type" => wanted = value.eq_ignore_ascii_case(part_type),
                    "transfer-syntax" => syntax = Some(value.to_owned()),
                    _ => {}
                }
            }
            if !wanted {
                continue;
            }
            type_at_all = true;
            match syntax.as_deref() {
                Some("*") => acceptable.any = true,
                Some(uid) => acceptable.syntaxes.push(uid.to_owned()),
                None => acceptable.merge(Self::default_syntax()),
            }
        }
        if !type_at_all {
            return Err(Problem::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("this resource is multipart/related; type=\"{part_type}\""),
            ));
        }
        Ok(acceptable)
    }

    fn default_syntax() -> Self {
        Self { any: false, syntaxes: vec![EXPLICIT_VR_LE.to_owned()], by_default: true }
    }

    fn merge(&mut self, other: Self) {
        self.any |= other.any;
        self.by_default |= other.by_default;
        self.syntaxes.extend(other.syntaxes);
    }

    /// How an instance stored in `stored` goes out, if it can.
    pub(crate) fn delivery(&self, stored: &str) -> Option<Delivery> {
        let named = |uid: &str| self.syntaxes.iter().any(|s| s == uid);
        if self.any || named(stored) {
            return Some(Delivery::AsStored);
        }
        let target = transcode::TARGETS.into_iter().find(|target| named(target));
        match target {
            Some(target) if renkei_imaging::can_decode(stored) => Some(Delivery::Native(target)),
            _ if self.by_default => Some(Delivery::AsStored),
            _ => None,
        }
    }
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
    if let Some(reader) = reader(principal) {
        instances = state.archive.retrieve_as(&reader, &query).await?;
    } else {
        for facility in &visible_facilities(state, principal).await? {
            instances.extend(state.archive.retrieve(facility, &query).await?);
        }
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
    let acceptable = Acceptable::parse(headers, "application/dicom")?;
    let instances = instances_under(state, principal, level, keys).await?;
    let mut deliveries = Vec::with_capacity(instances.len());
    for instance in instances {
        let stored = instance.transfer_syntax_uid.as_str();
        let Some(delivery) = acceptable.delivery(stored) else {
            return Err(Problem::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "an instance is stored in {stored} and cannot be transcoded to the syntaxes asked for; transfer-syntax=* sends it as stored"
                ),
            ));
        };
        deliveries.push((instance, delivery));
    }
    let or_as_stored = acceptable.by_default;
    let (sender, receiver) = mpsc::channel(4);
    let archive = state.archive.clone();
    tokio::spawn(async move {
        if let Err(error) = stream_instances(&archive, deliveries, or_as_stored, &sender).await {
            // The client sees a truncated body; the cause goes to the log.
            tracing::warn!(%error, "WADO-RS retrieval stopped");
            let _ = sender.send(Err(std::io::Error::other("retrieval failed"))).await;
        }
    });
    Ok(multipart::streamed("application/dicom", BOUNDARY, receiver))
}

async fn stream_instances(
    archive: &renkei_service::Archive,
    deliveries: Vec<(StoredInstance, Delivery)>,
    or_as_stored: bool,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for (instance, delivery) in deliveries {
        let stored = instance.transfer_syntax_uid.to_string();
        if instance.shared.is_some() {
            // Another facility's study goes out relabelled, from a scratch file.
            let target = match delivery {
                Delivery::AsStored => None,
                Delivery::Native(target) => Some(target),
            };
            let transcoder: Transcoder =
                |path, stored, target, out| Ok(transcode::transcode(path, stored, target, out)?);
            let (file, target) = match archive.outgoing(&instance, target.map(|target| (target, transcoder))).await {
                Ok((file, _)) => (file, target),
                // As for the facility's own objects: one that cannot be decoded goes as
                // stored, if the client named no syntax.
                Err(error) if target.is_some() && or_as_stored => {
                    tracing::warn!(%error, "cannot transcode; sending the object as stored");
                    (archive.outgoing(&instance, None).await?.0, None)
                }
                Err(error) => return Err(error.into()),
            };
            send_part(&instance, target.unwrap_or(&stored), sender).await?;
            send_file(file, sender).await?;
            sender.send(Ok(Bytes::from_static(b"\r\n"))).await?;
            continue;
        }
        // A transcoding is prepared (data set read, frame 1 decoded) before its part begins:
        // an object that cannot be decoded after all then goes as stored, if the client
        // named no syntax, rather than cutting the whole response off.
        let transcoding = match delivery {
            Delivery::AsStored => None,
            Delivery::Native(target) => {
                let (path, syntax) = (archive.local_path(&instance).await?, stored.clone());
                match tokio::task::spawn_blocking(move || Transcoding::prepare(&path, &syntax, target)).await? {
                    Ok(transcoding) => Some((transcoding, target)),
                    Err(error) if or_as_stored => {
                        tracing::warn!(%error, "cannot transcode; sending the object as stored");
                        None
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let ts = transcoding.as_ref().map_or(stored.as_str(), |(_, target)| target);
        send_part(&instance, ts, sender).await?;
        match transcoding {
            None => send_file(archive.open_instance(&instance).await?, sender).await?,
            Some((transcoding, _)) => {
                let mut writer = ChannelWriter { sender: sender.clone() };
                tokio::task::spawn_blocking(move || transcoding.write(&mut writer)).await??;
            }
        }
        sender.send(Ok(Bytes::from_static(b"\r\n"))).await?;
    }
    sender.send(Ok(Bytes::from(multipart::end(BOUNDARY)))).await?;
    Ok(())
}

/// A part's head and the Part-10 header of its instance, in transfer syntax `ts`.
async fn send_part(
    instance: &StoredInstance,
    ts: &str,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut head = multipart::part_head(BOUNDARY, &format!("application/dicom; transfer-syntax={ts}")).into_bytes();
    head.extend(renkei_dicom::write::part10_header(
        instance.sop_class_uid.as_str(),
        instance.sop_instance_uid.as_str(),
        ts,
    ));
    sender.send(Ok(Bytes::from(head))).await?;
    Ok(())
}

async fn send_file(
    mut file: tokio::fs::File,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let read = file.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        chunk.truncate(read);
        sender.send(Ok(Bytes::from(chunk))).await?;
    }
}

/// A blocking writer into the response channel, for the transcoder.
struct ChannelWriter {
    sender: mpsc::Sender<Chunk>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let chunk = Ok(Bytes::copy_from_slice(bytes));
        self.sender.blocking_send(chunk).map_err(|_| std::io::Error::other("the client went away"))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
        let parsed = |value: &str| Acceptable::parse(&accept(value), "application/dicom");
        assert_eq!(Acceptable::parse(&HeaderMap::new(), "application/dicom").ok(), Some(Acceptable::default_syntax()));
        let any = parsed("multipart/related; type=\"application/dicom\"; transfer-syntax=*").expect("ok");
        assert_eq!(any.delivery("1.2.840.10008.1.2.4.80"), Some(Delivery::AsStored));
        let default = parsed("multipart/related; type=\"application/dicom\"").expect("ok");
        assert_eq!(default.delivery(EXPLICIT_VR_LE), Some(Delivery::AsStored));
        assert_eq!(default.delivery("1.2.840.10008.1.2.4.80"), Some(Delivery::Native(EXPLICIT_VR_LE)));
        assert_eq!(default.delivery("1.2.840.10008.1.2.4.100"), Some(Delivery::AsStored), "MPEG-2 cannot be decoded");
        let named = parsed(&format!("multipart/related; type=\"application/dicom\"; transfer-syntax={EXPLICIT_VR_LE}"))
            .expect("ok");
        assert_eq!(named.delivery("1.2.840.10008.1.2"), Some(Delivery::Native(EXPLICIT_VR_LE)));
        let implicit =
            parsed("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2").expect("ok");
        assert_eq!(implicit.delivery("1.2.840.10008.1.2.4.90"), Some(Delivery::Native("1.2.840.10008.1.2")));
        assert_eq!(named.delivery("1.2.840.10008.1.2.4.100"), None);
        let jpeg_ls = parsed("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.80")
            .expect("ok");
        assert_eq!(jpeg_ls.delivery(EXPLICIT_VR_LE), None, "no encoder: Explicit VR LE was not asked for");
        assert!(parsed("application/dicom+json").is_err());
        let refused = parsed("multipart/related; type=\"application/dicom\"; transfer-syntax=*; q=0, multipart/related; type=\"application/dicom\"")
            .expect("ok");
        assert_eq!(
            refused.delivery("1.2.840.10008.1.2.4.80"),
            Some(Delivery::Native(EXPLICIT_VR_LE)),
            "q=0 is a refusal"
        );
        let mut two = accept("application/dicom+json");
        two.append(
            header::ACCEPT,
            HeaderValue::from_static("multipart/related; type=\"application/dicom\"; transfer-syntax=*"),
        );
        assert_eq!(
            Acceptable::parse(&two, "application/dicom").ok().map(|a| a.any),
            Some(true),
            "every Accept header counts"
        );
        assert!(parsed("multipart/related; type=\"image/jpeg\"").is_err());
    }
}
