//! Bearer tokens. Every request but `/healthz` needs one: there is no open mode.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use renkei_domain::FacilityId;
use renkei_domain::model::Principal;
use renkei_domain::mpi::Actor;
use renkei_service::Reader;

use crate::AppState;
use crate::problem::Problem;

/// Resolves `Authorization: Bearer <token>` to a [`Principal`]
/// in the request's extensions, or answers 401.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, Problem> {
    let unauthorized = || Problem::new(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unauthorized)?;
    let principal = state.archive.authenticate(token).await?.ok_or_else(unauthorized)?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// What kind of token a principal holds, for audit trails: `east viewer token`,
/// `administrator's token`. (Tokens carry no person's name.)
pub(crate) fn token_kind(principal: &Principal) -> String {
    match &principal.facility {
        Some(facility) => format!("{facility} {} token", principal.role.as_str()),
        None => "administrator's token".to_owned(),
    }
}

/// Who acted: the name given, beside the kind of token used; both a name and a reason are
/// required.
pub(crate) fn actor(principal: &Principal, who: &str, why: String) -> Result<Actor, Problem> {
    if who.trim().is_empty() || why.trim().is_empty() {
        return Err(Problem::bad_request("a name (who acts) and a reason are required"));
    }
    Ok(Actor { who: format!("{} ({})", who.trim(), token_kind(principal)), why })
}

/// A facility's principal as a reader of what other facilities share with it; `None` for
/// an administrator, who sees every facility's own data instead.
pub(crate) fn reader(principal: &Principal) -> Option<Reader> {
    let facility = principal.facility.clone()?;
    Some(Reader { facility, via: format!("DICOMweb ({})", token_kind(principal)) })
}

/// The facilities whose data `principal` may see: its own, or every one for an administrator.
pub(crate) async fn visible_facilities(state: &AppState, principal: &Principal) -> Result<Vec<FacilityId>, Problem> {
    match &principal.facility {
        Some(facility) => Ok(vec![facility.clone()]),
        None => Ok(state.archive.facilities().await?.into_iter().map(|f| f.id).collect()),
    }
}
