//! Renkei's HTTP surface. For now: `GET /healthz`, which answers once the server is ready.
//! DICOMweb, FHIR, the admin API and the console mount here as they arrive.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use renkei_service::Archive;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub archive: Arc<Archive>,
}

/// The HTTP router.
pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
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
