//! Renkei's HTTP surface.
//!
//! - `GET /healthz`: readiness; `/`, `/console.js`, `/console.css`: the web console ([`console`]).
//!   These are the only routes without a token; none of them holds patient data.
//! - `/dicom-web/...`: DICOMweb (QIDO-RS, STOW-RS, WADO-RS retrieval, metadata, bulk data,
//!   frames, rendered images and thumbnails), behind bearer tokens ([`auth`]).
//! - `/fhir/...`: HL7 FHIR over the master patient index ([`fhir`]): `Patient/$match` and
//!   `Patient` read, behind the same tokens; errors there are `OperationOutcome`s.
//! - `/api/...`: the administrators' JSON API ([`admin`]): the patient index's review queue,
//!   person view and decisions; and sharing between facilities ([`sharing`]): publications,
//!   break-glass access and the access audit, for facilities' and administrators' tokens.
//! - [`problem`]: every other error is an `application/problem+json` body.
//! - [`json`]: DICOM JSON.

pub mod admin;
pub mod auth;
pub mod console;
pub mod dose;
pub mod fhir;
pub mod json;
pub mod metadata;
mod multipart;
pub mod problem;
pub mod qido;
pub mod rendered;
pub mod sharing;
pub mod stow;
pub mod wado;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use renkei_service::Archive;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub archive: Arc<Archive>,
}

/// The HTTP router.
pub fn router(state: AppState) -> Router {
    let dicomweb = Router::new()
        .route("/studies", get(qido::studies).post(stow::store))
        .route("/studies/{study}", get(wado::study).post(stow::store_in_study))
        .route("/studies/{study}/series/{series}", get(wado::series))
        .route("/studies/{study}/series/{series}/instances/{instance}", get(wado::instance))
        .route("/studies/{study}/metadata", get(metadata::study))
        .route("/studies/{study}/series/{series}/metadata", get(metadata::series))
        .route("/studies/{study}/series/{series}/instances/{instance}/metadata", get(metadata::instance))
        .route("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{range}", get(metadata::bulkdata))
        .route("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", get(rendered::frames))
        .route("/studies/{study}/series/{series}/instances/{instance}/rendered", get(rendered::instance_rendered))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
            get(rendered::frame_rendered),
        )
        .route("/studies/{study}/series/{series}/instances/{instance}/thumbnail", get(rendered::instance_thumbnail))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/thumbnail",
            get(rendered::frame_thumbnail),
        )
        .route("/studies/{study}/series/{series}/thumbnail", get(rendered::series_thumbnail))
        .route("/studies/{study}/series/{series}/rendered", get(rendered::series_rendered))
        .route("/studies/{study}/thumbnail", get(rendered::study_thumbnail))
        .route("/studies/{study}/rendered", get(rendered::study_rendered))
        .route("/series", get(qido::series))
        .route("/instances", get(qido::instances))
        .route("/studies/{study}/series", get(qido::study_series))
        .route("/studies/{study}/instances", get(qido::study_instances))
        .route("/studies/{study}/series/{series}/instances", get(qido::series_instances))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    let fhir = Router::new()
        .route("/Patient/{id}", get(fhir::patient_read))
        .route("/Patient/$match", axum::routing::post(fhir::patient_match))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    let api = Router::new()
        .route("/mpi/status", get(admin::status))
        .route("/mpi/review", get(admin::review))
        .route("/mpi/records/{id}", get(admin::person))
        .route("/mpi/lookup", get(admin::lookup))
        .route("/mpi/decisions", axum::routing::post(admin::decide))
        .route("/sharing/facilities", get(sharing::facilities))
        .route("/sharing/publications", get(sharing::publications).post(sharing::publish))
        .route("/sharing/publications/{id}/revoke", axum::routing::post(sharing::revoke))
        .route("/sharing/break-glass", get(sharing::break_glasses).post(sharing::break_glass))
        .route("/sharing/break-glass/{id}/close", axum::routing::post(sharing::close_break_glass))
        .route("/sharing/break-glass/{id}/review", axum::routing::post(sharing::review))
        .route("/sharing/accesses", get(sharing::accesses))
        .route("/dose/exams", get(dose::exams))
        .route("/dose/exams.csv", get(dose::exams_csv))
        .route("/dose/exams/{id}", get(dose::exam))
        .route("/dose/drl", get(dose::drl_tables))
        .route("/dose/distribution", get(dose::distribution))
        .route("/dose/benchmark", get(dose::benchmark))
        .route("/dose/workload", get(dose::workload))
        .route("/dose/history", get(dose::history))
        .route("/dose/alerts", get(dose::alerts))
        .route("/dose/alert-rules", get(dose::alert_rules).post(dose::set_alert_rule))
        .route("/dose/protocols", get(dose::protocols).post(dose::map_protocol))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(console::index))
        .route("/console.js", get(console::script))
        .route("/console.css", get(console::stylesheet))
        .route("/chart.js", get(console::charts))
        .nest("/dicom-web", dicomweb)
        .nest("/fhir", fhir)
        .nest("/api", api)
        .fallback(|| async { problem::Problem::not_found() })
        .with_state(state)
}

/// Readiness: the router only serves once the index and blob store are open.
async fn healthz() -> &'static str {
    "ok"
}

/// Serves HTTP on a bound listener until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
