//! The administrators' JSON API under `/api`: the master patient index's review queue,
//! person view and decisions. Every route but decisions needs an administrator's token; a
//! facility's token gets 403, and may only link its own patient to a referral.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use renkei_domain::model::{Principal, Role};
use renkei_domain::mpi::{Link, PatientRecord, RecordId};
use renkei_service::{Decision, Explanation};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::actor;
use crate::problem::Problem;

fn admin_only(principal: &Principal) -> Result<(), Problem> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::FORBIDDEN, "an administrator's token is required"))
    }
}

fn record(r: &PatientRecord) -> Value {
    json!({
        "id": r.id.0,
        "facility": r.facility.as_str(),
        "patient_id": r.patient_id,
        "issuer": r.issuer,
        "name": r.name,
        "birth_date": r.birth_date,
        "sex": r.sex,
        "person": r.person.map(|p| p.0),
    })
}

fn link(l: &Link) -> Value {
    json!({
        "id": l.id,
        "a": l.a.0,
        "b": l.b.0,
        "kind": l.kind.as_str(),
        "weight": l.weight,
        "created": { "by": l.created_by.who, "why": l.created_by.why, "at": l.created_at },
        "retired": l.retired.as_ref().map(|r| json!({ "by": r.by.who, "why": r.by.why, "at": r.at })),
    })
}

fn explanation(e: &Explanation) -> Value {
    json!({
        "probability": e.probability,
        "weight": e.weight,
        "grade": e.grade,
        "prior_weight": e.prior_weight,
        "terms": e.terms.iter().map(|t| json!({
            "field": t.field.name(),
            "level": t.level,
            "weight": t.weight,
            "term_frequency_adjustment": t.term_frequency_adjustment,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/mpi/status`.
pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, Problem> {
    admin_only(&principal)?;
    let s = state.archive.mpi_stats().await?;
    Ok(Json(json!({
        "records": s.records,
        "pending": s.pending,
        "persons": s.persons,
        "persons_across_facilities": s.persons_across_facilities,
        "candidate_links": s.candidates,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

/// `GET /api/mpi/review?limit=N`: candidate pairs of records of different persons,
/// strongest first, side by side with their scores taken apart.
pub async fn review(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Limit>,
) -> Result<Response, Problem> {
    admin_only(&principal)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let tasks = state.archive.review_queue(limit).await?;
    let body: Vec<Value> = tasks
        .iter()
        .map(|t| json!({ "link": link(&t.link), "a": record(&t.a), "b": record(&t.b), "score": explanation(&t.explanation) }))
        .collect();
    Ok(Json(body).into_response())
}

/// `GET /api/mpi/records/{id}`: the record's person, all its records and their links'
/// history.
pub async fn person(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<Response, Problem> {
    admin_only(&principal)?;
    let found = state.archive.patient_record(&principal, RecordId(id)).await?;
    let view = state.archive.person_view(&found).await?;
    Ok(Json(json!({
        "person": view.person.map(|p| p.0),
        "records": view.records.iter().map(record).collect::<Vec<_>>(),
        "links": view.links.iter().map(link).collect::<Vec<_>>(),
        "others": view.others.iter().map(record).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct Lookup {
    facility: String,
    patient_id: String,
    #[serde(default)]
    issuer: String,
}

/// `GET /api/mpi/lookup?facility=F&patient_id=P[&issuer=I]`: a facility's patient's record.
pub async fn lookup(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Lookup>,
) -> Result<Response, Problem> {
    admin_only(&principal)?;
    let facility = renkei_domain::FacilityId::new(&query.facility).map_err(|e| Problem::bad_request(e.to_string()))?;
    let found = state.archive.mpi_record(&facility, &query.patient_id, &query.issuer).await?;
    Ok(Json(record(&found)).into_response())
}

#[derive(Deserialize)]
pub struct DecisionRequest {
    a: i64,
    b: i64,
    /// `same`, `different` or `withdraw`.
    decision: String,
    reason: String,
    /// Who decided: kept with the decision, beside the kind of token used.
    reviewer: String,
}

/// `POST /api/mpi/decisions`: a person's decision about two records. Answers 202: the
/// matcher recomputes the persons within a second. An administrator decides about any two
/// records; a facility's uploader token only links one of its own records to one another
/// facility publishes to it (see `Archive::may_decide`): that is how a receiving
/// facility links its patient to a referral.
pub async fn decide(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let request: DecisionRequest =
        serde_json::from_slice(&body).map_err(|e| Problem::bad_request(format!("not a decision: {e}")))?;
    let decision = match request.decision.as_str() {
        "same" => Decision::Same,
        "different" => Decision::Different,
        "withdraw" => Decision::Withdraw,
        _ => return Err(Problem::bad_request("decision must be same, different or withdraw")),
    };
    if principal.role == Role::Viewer {
        return Err(Problem::new(StatusCode::FORBIDDEN, "a viewer's token may not link patients"));
    }
    let (a, b) = (RecordId(request.a), RecordId(request.b));
    state.archive.may_decide(&principal, a, b, decision).await?;
    let by = actor(&principal, &request.reviewer, request.reason)?;
    state.archive.decide(a, b, decision, by).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "recorded" }))).into_response())
}
