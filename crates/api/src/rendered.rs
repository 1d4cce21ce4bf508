//! WADO-RS frames, rendered images and thumbnails (PS3.18 10.4.1.1.3, 10.4.1.1.4, 10.4.1.1.5).

use axum::extract::{Extension, Path, Query as QueryString, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use renkei_dicom::Syntax;
use renkei_dicom::syntax::{EXPLICIT_VR_BE, EXPLICIT_VR_LE};
use renkei_dicom::walk::tree_file;
use renkei_domain::model::{Principal, StoredInstance};
use renkei_domain::query::{Attribute, QueryLevel};
use renkei_imaging::transcode::native_bytes;
use renkei_imaging::{ImageFormat, ImagingError, PixelModule, Window, WindowFunction};
use tokio::sync::mpsc;

use crate::AppState;
use crate::multipart::{self, Chunk};
use crate::problem::Problem;
use crate::wado::{Acceptable, Delivery, instances_under, visible_instance};

/// The longest side of a thumbnail, in pixels.
const THUMBNAIL_SIDE: u32 = 128;

type Params = QueryString<Vec<(String, String)>>;

impl From<ImagingError> for Problem {
    fn from(error: ImagingError) -> Self {
        match error {
            ImagingError::NoPixelData | ImagingError::NoSuchFrame(_) => Problem::not_found(),
            ImagingError::Unsupported(_) => Problem::new(StatusCode::NOT_ACCEPTABLE, error.to_string()),
            ImagingError::Malformed(_) | ImagingError::Io(_) => {
                tracing::warn!(%error, "pixel data could not be read");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the stored pixel data could not be read; see server log",
                )
            }
        }
    }
}

/// The image format the client accepts: JPEG unless it prefers PNG.
fn image_format(headers: &HeaderMap) -> Result<ImageFormat, Problem> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(ImageFormat::Jpeg) };
    for media in accept.split(',') {
        match media.split(';').next().unwrap_or("").trim() {
            "image/jpeg" | "image/*" | "*/*" => return Ok(ImageFormat::Jpeg),
            "image/png" => return Ok(ImageFormat::Png),
            _ => {}
        }
    }
    Err(Problem::new(StatusCode::NOT_ACCEPTABLE, "rendered images are image/jpeg or image/png"))
}

/// `window=center,width[,function]` (PS3.18 8.3.5.1.3), the function `linear` (the default),
/// `linear-exact` or `sigmoid`.
fn window(params: &[(String, String)]) -> Result<Option<Window>, Problem> {
    let Some((_, value)) = params.iter().find(|(name, _)| name == "window") else { return Ok(None) };
    let bad = || Problem::bad_request("window must be center,width[,linear|linear-exact|sigmoid] with a usable width");
    let mut parts = value.split(',');
    let center: f64 = parts.next().and_then(|v| v.trim().parse().ok()).ok_or_else(bad)?;
    let width: f64 = parts.next().and_then(|v| v.trim().parse().ok()).ok_or_else(bad)?;
    let function = match parts.next() {
        None => WindowFunction::Linear,
        Some(name) => WindowFunction::parse(name).ok_or_else(bad)?,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Window::new(center, width, function).map(Some).ok_or_else(bad)
}

/// The Image Pixel Module of the object stored at `path` in `transfer_syntax`. Blocking.
fn pixel_module(path: &std::path::Path, transfer_syntax: &str) -> Result<PixelModule, ImagingError> {
    let syntax = Syntax::from_uid(transfer_syntax).unwrap_or(Syntax::EXPLICIT_LE);
    let mut file = std::fs::File::open(path)?;
    let nodes = tree_file(&mut file, syntax, 1024, &renkei_dicom::dictionary::implicit_vr)
        .map_err(|_| ImagingError::Malformed("data set"))?;
    PixelModule::from_tree(&nodes, syntax.big_endian)
}

/// Reads, decodes and renders one frame, off the runtime.
async fn render_image(
    state: &AppState,
    instance: StoredInstance,
    number: u32,
    window: Option<Window>,
    max_side: Option<u32>,
    format: ImageFormat,
) -> Result<Vec<u8>, ImagingError> {
    let path = state.archive.blob_path(&instance);
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ImagingError> {
        let ts = instance.transfer_syntax_uid.as_str();
        let module = pixel_module(&path, ts)?;
        let frame = renkei_imaging::frame(&path, ts, &module, number)?;
        let samples = renkei_imaging::decode(&frame, ts, &module)?;
        renkei_imaging::render(&samples, &module, window, max_side, format)
    })
    .await
    .unwrap_or(Err(ImagingError::Malformed("the rendering task failed")))
}

fn media_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
    }
}

fn image_response(image: Vec<u8>, format: ImageFormat) -> Response {
    let mut response = image.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type(format)));
    response
}

/// Every image of a study or series, each instance's first frame in the order stored, as
/// `multipart/related; type="image/jpeg"` (or PNG), streamed as they are rendered. Objects
/// without pixel data (reports, documents) are left out; if nothing is left the answer is 404.
async fn render_all(
    state: &AppState,
    instances: Vec<StoredInstance>,
    window: Option<Window>,
    format: ImageFormat,
) -> Result<Response, Problem> {
    const BOUNDARY: &str = "renkei-rendered-boundary";
    let media = media_type(format);
    let mut instances = instances.into_iter();
    // The first image is rendered before answering: a study without images is then a 404,
    // and an undecodable one a clean error rather than a cut-off body.
    let first = loop {
        let Some(instance) = instances.next() else { return Err(Problem::not_found()) };
        match render_image(state, instance, 1, window, None, format).await {
            Ok(image) => break image,
            Err(ImagingError::NoPixelData) => {}
            Err(error) => return Err(error.into()),
        }
    };
    let part = move |image: Vec<u8>| -> Chunk {
        let mut bytes = multipart::part_head(BOUNDARY, media).into_bytes();
        bytes.extend(image);
        bytes.extend_from_slice(b"\r\n");
        Ok(Bytes::from(bytes))
    };
    let (sender, receiver) = mpsc::channel(2);
    let state = state.clone();
    tokio::spawn(async move {
        if sender.send(part(first)).await.is_err() {
            return;
        }
        for instance in instances {
            match render_image(&state, instance, 1, window, None, format).await {
                Ok(image) => {
                    if sender.send(part(image)).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(ImagingError::NoPixelData) => {}
                Err(error) => {
                    tracing::warn!(%error, "rendering a study or series stopped");
                    let _ = sender.send(Err(std::io::Error::other("rendering failed"))).await;
                    return;
                }
            }
        }
        let _ = sender.send(Ok(Bytes::from(multipart::end(BOUNDARY)))).await;
    });
    Ok(multipart::streamed(media, BOUNDARY, receiver))
}

/// The thumbnail of a study or series: that of its middle instance (in the order stored), or
/// of the next one that has pixel data (a study may hold reports and documents too).
async fn thumbnail_of(
    state: &AppState,
    mut instances: Vec<StoredInstance>,
    format: ImageFormat,
) -> Result<Response, Problem> {
    let middle = instances.len() / 2;
    instances.rotate_left(middle);
    for instance in instances {
        match render_image(state, instance, 1, None, Some(THUMBNAIL_SIDE), format).await {
            Err(ImagingError::NoPixelData) => continue,
            answer => return Ok(image_response(answer?, format)),
        }
    }
    Err(Problem::not_found())
}

pub async fn instance_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
    params: Params,
) -> Result<Response, Problem> {
    let format = image_format(&headers)?;
    let window = window(&params.0)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, 1, window, None, format).await?, format))
}

pub async fn frame_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance, frame)): Path<(String, String, String, u32)>,
    params: Params,
) -> Result<Response, Problem> {
    let format = image_format(&headers)?;
    let window = window(&params.0)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, frame, window, None, format).await?, format))
}

pub async fn instance_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let format = image_format(&headers)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, 1, None, Some(THUMBNAIL_SIDE), format).await?, format))
}

pub async fn frame_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance, frame)): Path<(String, String, String, u32)>,
) -> Result<Response, Problem> {
    let format = image_format(&headers)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, frame, None, Some(THUMBNAIL_SIDE), format).await?, format))
}

pub async fn series_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let format = image_format(&headers)?;
    let keys = [(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    thumbnail_of(&state, instances_under(&state, &principal, QueryLevel::Series, &keys).await?, format).await
}

pub async fn study_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, Problem> {
    let format = image_format(&headers)?;
    let keys = [(Attribute::StudyInstanceUid, study)];
    thumbnail_of(&state, instances_under(&state, &principal, QueryLevel::Study, &keys).await?, format).await
}

pub async fn series_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
    params: Params,
) -> Result<Response, Problem> {
    let (format, window) = (image_format(&headers)?, window(&params.0)?);
    let keys = [(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    render_all(&state, instances_under(&state, &principal, QueryLevel::Series, &keys).await?, window, format).await
}

pub async fn study_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
    params: Params,
) -> Result<Response, Problem> {
    let (format, window) = (image_format(&headers)?, window(&params.0)?);
    let keys = [(Attribute::StudyInstanceUid, study)];
    render_all(&state, instances_under(&state, &principal, QueryLevel::Study, &keys).await?, window, format).await
}

/// Frames (PS3.18 10.4.1.1.3) as `multipart/related; type="application/octet-stream"`:
/// uncompressed by default, compressed frames decoded; as stored with `transfer-syntax=*`.
pub async fn frames(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
) -> Result<Response, Problem> {
    let numbers: Vec<u32> = list
        .split(',')
        .map(|n| n.trim().parse::<u32>().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| Problem::bad_request("frames are listed as 1-based numbers separated by commas"))?;
    let acceptable = Acceptable::parse(&headers, "application/octet-stream")?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    let path = state.archive.blob_path(&instance);
    let ts = instance.transfer_syntax_uid.to_string();
    let decoded = match acceptable.delivery(&ts) {
        Some(Delivery::AsStored) => false,
        // Native little-endian frames are the same bytes in every syntax.
        Some(Delivery::Native(_)) => renkei_imaging::is_encapsulated(&ts) || ts == EXPLICIT_VR_BE,
        None => {
            return Err(Problem::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("frames are stored in {ts} and cannot be decoded"),
            ));
        }
    };
    let transfer_syntax = ts.clone();
    let frames = tokio::task::spawn_blocking(move || -> Result<Vec<renkei_imaging::Frame>, ImagingError> {
        let module = pixel_module(&path, &ts)?;
        numbers
            .into_iter()
            .map(|n| {
                let frame = renkei_imaging::frame(&path, &ts, &module, n)?;
                if !decoded {
                    return Ok(frame);
                }
                let samples = renkei_imaging::decode(&frame, &ts, &module)?;
                Ok(renkei_imaging::Frame { bytes: native_bytes(&samples, &module)?, encapsulated: false })
            })
            .collect()
    })
    .await
    .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "frame task failed"))??;
    let parts = frames.into_iter().map(|frame| {
        let media = if frame.encapsulated {
            format!("application/octet-stream; transfer-syntax={transfer_syntax}")
        } else {
            format!("application/octet-stream; transfer-syntax={EXPLICIT_VR_LE}")
        };
        (media, frame.bytes)
    });
    Ok(multipart::response("application/octet-stream", "renkei-frame-boundary", parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parameters() {
        let params = |v: &str| vec![("window".to_owned(), v.to_owned())];
        let linear = |c, w| Window::new(c, w, WindowFunction::Linear);
        assert_eq!(window(&params("40,400")).ok(), Some(linear(40.0, 400.0)));
        assert_eq!(window(&params("-600,1500,linear")).ok(), Some(linear(-600.0, 1500.0)));
        let sigmoid = Window::new(40.0, 0.5, WindowFunction::Sigmoid);
        assert_eq!(window(&params("40,0.5,sigmoid")).ok(), Some(sigmoid));
        assert!(window(&params("40")).is_err());
        assert!(window(&params("40,400,gamma")).is_err());
        assert!(window(&params("40,0")).is_err());
        assert!(window(&params("40,0.5")).is_err(), "LINEAR needs a width of 1 or more");
        assert_eq!(window(&[]).ok(), Some(None));
    }
}
