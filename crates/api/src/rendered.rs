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
use renkei_imaging::{ImageFormat, ImagingError, PixelModule, Rendering, Window, WindowFunction};
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

/// The largest side a rendering may be scaled to.
const MAX_VIEWPORT: u32 = 4096;

/// A rendering as the request asks for it (PS3.18 8.3.5.1): the format from `Accept`, and
/// the query parameters `window=center,width[,linear|linear-exact|sigmoid]`,
/// `viewport=vw,vh` (scaled to fit, keeping the aspect ratio) and `quality=1..100` (JPEG).
fn rendering(headers: &HeaderMap, params: &[(String, String)]) -> Result<Rendering, Problem> {
    let mut rendering = Rendering::new(image_format(headers)?);
    for (name, value) in params {
        let numbers = |count: usize| -> Option<Vec<f64>> {
            let numbers: Vec<f64> = value.split(',').map(|v| v.trim().parse().ok()).collect::<Option<_>>()?;
            (numbers.len() == count).then_some(numbers)
        };
        match name.as_str() {
            "window" => {
                let bad = || Problem::bad_request("window must be center,width[,linear|linear-exact|sigmoid]");
                let parts: Vec<&str> = value.split(',').map(str::trim).collect();
                let number = |at: usize| parts.get(at).and_then(|v| v.parse::<f64>().ok()).ok_or_else(bad);
                let function = match parts.get(2) {
                    None => WindowFunction::Linear,
                    Some(name) => WindowFunction::parse(name).ok_or_else(bad)?,
                };
                if parts.len() > 3 {
                    return Err(bad());
                }
                rendering.window = Some(Window::new(number(0)?, number(1)?, function).ok_or_else(bad)?);
            }
            "viewport" => {
                let bad = || Problem::bad_request(format!("viewport must be vw,vh, each 1 to {MAX_VIEWPORT}"));
                let sides = numbers(2).ok_or_else(bad)?;
                let side = |v: f64| (v.fract() == 0.0 && (1.0..=MAX_VIEWPORT as f64).contains(&v)).then_some(v as u32);
                rendering.fit = Some((side(sides[0]).ok_or_else(bad)?, side(sides[1]).ok_or_else(bad)?));
            }
            "quality" => {
                let bad = || Problem::bad_request("quality must be 1 to 100");
                let quality = numbers(1).ok_or_else(bad)?[0];
                rendering.quality = (quality.fract() == 0.0 && (1.0..=100.0).contains(&quality))
                    .then_some(quality as u8)
                    .ok_or_else(bad)?;
            }
            _ => {}
        }
    }
    Ok(rendering)
}

/// A thumbnail: the object's own window, at most 128 pixels a side.
fn thumbnail(headers: &HeaderMap) -> Result<Rendering, Problem> {
    let rendering = Rendering::new(image_format(headers)?);
    Ok(Rendering { fit: Some((THUMBNAIL_SIDE, THUMBNAIL_SIDE)), shrink_only: true, ..rendering })
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
    rendering: Rendering,
) -> Result<Vec<u8>, ImagingError> {
    let path = state.archive.local_path(&instance).await.map_err(|e| ImagingError::Io(std::io::Error::other(e)))?;
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ImagingError> {
        let ts = instance.transfer_syntax_uid.as_str();
        let module = pixel_module(&path, ts)?;
        let frame = renkei_imaging::frame(&path, ts, &module, number)?;
        let samples = renkei_imaging::decode(&frame, ts, &module)?;
        renkei_imaging::render(&samples, &module, &rendering)
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
    rendering: Rendering,
) -> Result<Response, Problem> {
    const BOUNDARY: &str = "renkei-rendered-boundary";
    let media = media_type(rendering.format);
    let mut instances = instances.into_iter();
    // The first image is rendered before answering: a study without images is then a 404,
    // and an undecodable one a clean error rather than a cut-off body.
    let first = loop {
        let Some(instance) = instances.next() else { return Err(Problem::not_found()) };
        match render_image(state, instance, 1, rendering).await {
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
            match render_image(&state, instance, 1, rendering).await {
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
    rendering: Rendering,
) -> Result<Response, Problem> {
    let middle = instances.len() / 2;
    instances.rotate_left(middle);
    for instance in instances {
        match render_image(state, instance, 1, rendering).await {
            Err(ImagingError::NoPixelData) => continue,
            answer => return Ok(image_response(answer?, rendering.format)),
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
    let rendering = rendering(&headers, &params.0)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, 1, rendering).await?, rendering.format))
}

pub async fn frame_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance, frame)): Path<(String, String, String, u32)>,
    params: Params,
) -> Result<Response, Problem> {
    let rendering = rendering(&headers, &params.0)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, frame, rendering).await?, rendering.format))
}

pub async fn instance_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let rendering = thumbnail(&headers)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, 1, rendering).await?, rendering.format))
}

pub async fn frame_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series, instance, frame)): Path<(String, String, String, u32)>,
) -> Result<Response, Problem> {
    let rendering = thumbnail(&headers)?;
    let instance = visible_instance(&state, &principal, study, series, instance).await?;
    Ok(image_response(render_image(&state, instance, frame, rendering).await?, rendering.format))
}

pub async fn series_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let rendering = thumbnail(&headers)?;
    let keys = [(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    thumbnail_of(&state, instances_under(&state, &principal, QueryLevel::Series, &keys).await?, rendering).await
}

pub async fn study_thumbnail(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
) -> Result<Response, Problem> {
    let rendering = thumbnail(&headers)?;
    let keys = [(Attribute::StudyInstanceUid, study)];
    thumbnail_of(&state, instances_under(&state, &principal, QueryLevel::Study, &keys).await?, rendering).await
}

pub async fn series_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
    params: Params,
) -> Result<Response, Problem> {
    let rendering = rendering(&headers, &params.0)?;
    let keys = [(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    render_all(&state, instances_under(&state, &principal, QueryLevel::Series, &keys).await?, rendering).await
}

pub async fn study_rendered(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
    params: Params,
) -> Result<Response, Problem> {
    let rendering = rendering(&headers, &params.0)?;
    let keys = [(Attribute::StudyInstanceUid, study)];
    render_all(&state, instances_under(&state, &principal, QueryLevel::Study, &keys).await?, rendering).await
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
    let path = state.archive.local_path(&instance).await?;
    let ts = instance.transfer_syntax_uid.to_string();
    // Native little-endian frames are the same bytes in every syntax; others must be decoded
    // to be served uncompressed, and are labelled with their own syntax when served as stored.
    let little_endian_native = !(renkei_imaging::is_encapsulated(&ts) || ts == EXPLICIT_VR_BE);
    let decoded = match acceptable.delivery(&ts) {
        Some(Delivery::AsStored) => false,
        Some(Delivery::Native(_)) => !little_endian_native,
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
    let label = if decoded || little_endian_native { EXPLICIT_VR_LE } else { transfer_syntax.as_str() };
    let media = format!("application/octet-stream; transfer-syntax={label}");
    let parts = frames.into_iter().map(|frame| (media.clone(), frame.bytes));
    Ok(multipart::response("application/octet-stream", "renkei-frame-boundary", parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_parameters() {
        let params = |v: &str| vec![("window".to_owned(), v.to_owned())];
        let window = |v: &str| rendering(&HeaderMap::new(), &params(v)).map(|r| r.window);
        let linear = |c, w| Window::new(c, w, WindowFunction::Linear);
        assert_eq!(window("40,400").ok(), Some(linear(40.0, 400.0)));
        assert_eq!(window("-600,1500,linear").ok(), Some(linear(-600.0, 1500.0)));
        assert_eq!(window("40,0.5,sigmoid").ok(), Some(Window::new(40.0, 0.5, WindowFunction::Sigmoid)));
        for bad in ["40", "40,400,gamma", "40,0", "40,0.5", "40,400,linear,1"] {
            assert!(window(bad).is_err(), "{bad}");
        }
        assert_eq!(rendering(&HeaderMap::new(), &[]).ok().map(|r| r.window), Some(None));
        let other = |name: &str, v: &str| rendering(&HeaderMap::new(), &[(name.to_owned(), v.to_owned())]);
        assert_eq!(other("viewport", "320,240").ok().and_then(|r| r.fit), Some((320, 240)));
        assert_eq!(other("quality", "60").ok().map(|r| r.quality), Some(60));
        for (name, bad) in
            [("viewport", "320"), ("viewport", "0,10"), ("viewport", "10,9999"), ("quality", "0"), ("quality", "5.5")]
        {
            assert!(other(name, bad).is_err(), "{name}={bad}");
        }
    }
}
