//! Sharing between facilities under `/api/sharing`: publications, break-glass access and
//! the access audit. Times are Unix seconds.
//!
//! A facility's uploader token publishes and revokes its own facility's studies; any of its
//! tokens opens (and closes) break-glass access for its own patients, and reads its own
//! publications and accesses. An administrator's token reads everything, closes and
//! reviews break-glass accesses.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use renkei_domain::FacilityId;
use renkei_domain::model::{Principal, Role};
use renkei_domain::sharing::{Audience, Consent, NewPublication, PatientRef, Published};
use renkei_service::BREAK_GLASS_DEFAULT_HOURS;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::actor;
use crate::problem::Problem;

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::bad_request(format!("not {what}: {e}")))
}

/// Publishing and revoking disclose or withhold a facility's patients: not for a viewer's
/// token.
fn may_publish(principal: &Principal) -> Result<(), Problem> {
    match principal.role {
        Role::Viewer => Err(Problem::new(StatusCode::FORBIDDEN, "a viewer's token may not publish or revoke")),
        Role::Uploader | Role::Admin => Ok(()),
    }
}

/// The facility a request acts for: the token's own, or, for an administrator, the one
/// named in the request.
fn acting_facility(principal: &Principal, named: Option<&str>) -> Result<FacilityId, Problem> {
    match (&principal.facility, named) {
        (Some(own), None) => Ok(own.clone()),
        (Some(own), Some(named)) if named == own.as_str() => Ok(own.clone()),
        (Some(_), Some(_)) => {
            Err(Problem::new(StatusCode::FORBIDDEN, "a facility's token acts for that facility only"))
        }
        (None, Some(named)) => FacilityId::new(named).map_err(|e| Problem::bad_request(e.to_string())),
        (None, None) => Err(Problem::bad_request("an administrator names the facility")),
    }
}

/// `GET /api/sharing/facilities`: the facilities a publication may name (every other one).
pub async fn facilities(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, Problem> {
    let facilities = state.archive.facilities().await?;
    let others: Vec<_> = facilities
        .iter()
        .filter(|f| principal.facility.as_ref() != Some(&f.id))
        .map(|f| json!({ "id": f.id.as_str(), "name": f.name }))
        .collect();
    Ok(Json(others).into_response())
}

#[derive(Deserialize)]
pub struct PublicationRequest {
    /// For an administrator's token: the publishing facility.
    facility: Option<String>,
    patient_id: String,
    #[serde(default)]
    issuer: String,
    /// One study; absent, every study of the patient.
    study_uid: Option<String>,
    /// `"group"`, or a list of facility ids.
    to: serde_json::Value,
    starts_at: i64,
    ends_at: i64,
    consent: Consent,
    by: String,
}

/// `POST /api/sharing/publications`: publishes a study, or every study of a patient.
pub async fn publish(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    may_publish(&principal)?;
    let request: PublicationRequest = parse(&body, "a publication")?;
    let facility = acting_facility(&principal, request.facility.as_deref())?;
    let audience = match &request.to {
        serde_json::Value::String(group) if group == "group" => Audience::Group,
        serde_json::Value::Array(ids) => Audience::Facilities(
            ids.iter()
                .map(|id| id.as_str().and_then(|id| FacilityId::new(id).ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Problem::bad_request("to: facility ids"))?,
        ),
        _ => return Err(Problem::bad_request("to: \"group\" or a list of facility ids")),
    };
    if request.by.trim().is_empty() {
        return Err(Problem::bad_request("say who publishes (by)"));
    }
    let publication = NewPublication {
        patient: PatientRef { facility, patient_id: request.patient_id, issuer: request.issuer },
        published: match request.study_uid {
            Some(study_uid) => Published::Study { study_uid },
            None => Published::Patient,
        },
        audience,
        starts_at: request.starts_at,
        ends_at: request.ends_at,
        consent: request.consent,
        created_by: actor(&principal, &request.by, "publish".into())?.who,
    };
    let published = state.archive.publish(&publication).await?;
    Ok((StatusCode::CREATED, Json(published)).into_response())
}

#[derive(Deserialize)]
pub struct Listing {
    limit: Option<u32>,
    since: Option<i64>,
    #[serde(default)]
    unreviewed: bool,
}

/// `GET /api/sharing/publications`: the facility's publications, newest first (every
/// facility's for an administrator).
pub async fn publications(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(listing): Query<Listing>,
) -> Result<Response, Problem> {
    let limit = listing.limit.unwrap_or(100).clamp(1, 1000);
    let now = renkei_service::now_unix();
    let list = state.archive.publications(principal.facility.as_ref(), limit).await?;
    let body: Vec<_> = list
        .iter()
        .map(|p| {
            let mut value = json!(p);
            value["current"] = json!(p.is_current(now));
            value
        })
        .collect();
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
pub struct Reasoned {
    by: String,
    reason: String,
}

/// `POST /api/sharing/publications/{id}/revoke`: access through it ends at once.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    may_publish(&principal)?;
    let request: Reasoned = parse(&body, "a revocation")?;
    let by = actor(&principal, &request.by, request.reason)?;
    state.archive.revoke_publication(id, principal.facility.as_ref(), &by).await?;
    Ok(Json(json!({ "status": "revoked" })).into_response())
}

#[derive(Deserialize)]
pub struct BreakGlassRequest {
    patient_id: String,
    #[serde(default)]
    issuer: String,
    reason: String,
    by: String,
    hours: Option<u32>,
}

/// `POST /api/sharing/break-glass`: a facility's emergency access to every study of the
/// person its patient is linked to. Flagged for an administrator's review.
pub async fn break_glass(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: BreakGlassRequest = parse(&body, "a break-glass request")?;
    let Some(facility) = principal.facility.clone() else {
        return Err(Problem::bad_request("administrators see every facility already; break-glass is for a facility"));
    };
    let by = actor(&principal, &request.by, request.reason)?;
    let patient = PatientRef { facility, patient_id: request.patient_id, issuer: request.issuer };
    let opened = state.archive.break_glass(patient, &by, request.hours.unwrap_or(BREAK_GLASS_DEFAULT_HOURS)).await?;
    Ok((StatusCode::CREATED, Json(opened)).into_response())
}

/// `POST /api/sharing/break-glass/{id}/close`: ends a break-glass access now (the
/// facility's own, or any for an administrator).
pub async fn close_break_glass(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: Reasoned = parse(&body, "a closing")?;
    let by = actor(&principal, &request.by, request.reason)?;
    state.archive.close_break_glass(id, principal.facility.as_ref(), &by).await?;
    Ok(Json(json!({ "status": "closed" })).into_response())
}

/// `GET /api/sharing/break-glass[?unreviewed=true]`: break-glass accesses, newest first.
pub async fn break_glasses(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(listing): Query<Listing>,
) -> Result<Response, Problem> {
    let limit = listing.limit.unwrap_or(100).clamp(1, 1000);
    let list = state.archive.break_glasses(principal.facility.as_ref(), listing.unreviewed, limit).await?;
    Ok(Json(list).into_response())
}

#[derive(Deserialize)]
pub struct ReviewRequest {
    by: String,
    note: String,
}

/// `POST /api/sharing/break-glass/{id}/review`: an administrator clears the flag.
pub async fn review(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    if principal.role != Role::Admin {
        return Err(Problem::new(StatusCode::FORBIDDEN, "an administrator's token is required"));
    }
    let request: ReviewRequest = parse(&body, "a review")?;
    let by = actor(&principal, &request.by, request.note)?;
    state.archive.review_break_glass(id, &by).await?;
    Ok(Json(json!({ "status": "reviewed" })).into_response())
}

/// `GET /api/sharing/accesses[?since=T]`: cross-facility accesses, newest first: by the
/// facility or to its studies (every one for an administrator).
pub async fn accesses(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(listing): Query<Listing>,
) -> Result<Response, Problem> {
    let limit = listing.limit.unwrap_or(200).clamp(1, 5000);
    let list = state.archive.shared_accesses(principal.facility.as_ref(), listing.since.unwrap_or(0), limit).await?;
    Ok(Json(list).into_response())
}
