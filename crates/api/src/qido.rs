//! QIDO-RS (PS3.18 10.6): search for studies, series and instances. Query parameters become
//! the same [`Query`] a C-FIND identifier does, so matching is one implementation.

use axum::extract::{Extension, Path, Query as QueryString, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_domain::model::Principal;
use renkei_domain::query::{Attribute, MatchKind, Matcher, Query, QueryKey, QueryLevel, QueryMatch};

use crate::AppState;
use crate::auth::{reader, visible_facilities};
use crate::json;
use crate::problem::Problem;

type Params = QueryString<Vec<(String, String)>>;

pub async fn studies(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, Problem> {
    search(&state, &principal, &headers, QueryLevel::Study, Vec::new(), params.0).await
}

pub async fn series(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, Problem> {
    search(&state, &principal, &headers, QueryLevel::Series, Vec::new(), params.0).await
}

pub async fn instances(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, Problem> {
    search(&state, &principal, &headers, QueryLevel::Image, Vec::new(), params.0).await
}

pub async fn study_series(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
    params: Params,
) -> Result<Response, Problem> {
    let scope = vec![(Attribute::StudyInstanceUid, study)];
    search(&state, &principal, &headers, QueryLevel::Series, scope, params.0).await
}

pub async fn study_instances(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    Path(study): Path<String>,
    params: Params,
) -> Result<Response, Problem> {
    let scope = vec![(Attribute::StudyInstanceUid, study)];
    search(&state, &principal, &headers, QueryLevel::Image, scope, params.0).await
}

pub async fn series_instances(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    Path((study, series)): Path<(String, String)>,
    params: Params,
) -> Result<Response, Problem> {
    let scope = vec![(Attribute::StudyInstanceUid, study), (Attribute::SeriesInstanceUid, series)];
    search(&state, &principal, &headers, QueryLevel::Image, scope, params.0).await
}

/// Whether the client accepts DICOM JSON.
fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return true };
    accept.split(',').any(|media| {
        let media = media.split(';').next().unwrap_or("").trim();
        matches!(media, "application/dicom+json" | "application/json" | "application/*" | "*/*")
    })
}

/// A query key named by keyword (`PatientName`) or by tag (`00100010`).
fn attribute(name: &str) -> Option<Attribute> {
    if let Some(attribute) = Attribute::from_keyword(name) {
        return Some(attribute);
    }
    if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let group = u16::from_str_radix(&name[..4], 16).ok()?;
        let element = u16::from_str_radix(&name[4..], 16).ok()?;
        return Attribute::from_tag(group, element);
    }
    None
}

/// Builds the query from the path's scope and the query string (PS3.18 8.3.4).
fn build_query(
    level: QueryLevel,
    scope: Vec<(Attribute, String)>,
    params: Vec<(String, String)>,
) -> Result<Query, Problem> {
    let mut query = Query::new(level, Vec::new());
    let mut raw_keys = scope;
    for (name, value) in params {
        match name.as_str() {
            "limit" | "offset" => {
                let number: u32 = value
                    .parse()
                    .map_err(|_| Problem::bad_request(format!("{name} must be a non-negative integer")))?;
                if name == "limit" {
                    query.limit = Some(number);
                } else {
                    query.offset = number;
                }
            }
            "fuzzymatching" => {
                query.fuzzy = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Problem::bad_request("fuzzymatching must be true or false")),
                }
            }
            // Renkei returns every attribute it indexes; includefield is satisfied by that.
            "includefield" => {}
            _ => {
                let attribute =
                    attribute(&name).ok_or_else(|| Problem::bad_request(format!("unsupported query key {name}")))?;
                raw_keys.push((attribute, value));
            }
        }
    }
    for (attribute, raw) in raw_keys {
        // UID lists may be written with commas in a URL (PS3.18 8.3.4.1).
        let raw = if attribute.kind() == MatchKind::Uid { raw.replace(',', "\\") } else { raw };
        let matcher = Matcher::parse(attribute, &raw).map_err(|e| Problem::bad_request(e.to_string()))?;
        query.keys.push(QueryKey { attribute, matcher });
    }
    Ok(query)
}

fn retrieve_url(headers: &HeaderMap, level: QueryLevel, found: &QueryMatch) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let study = found.values.get(&Attribute::StudyInstanceUid)?;
    let mut url = format!("http://{host}/dicom-web/studies/{study}");
    if level >= QueryLevel::Series {
        url.push_str(&format!("/series/{}", found.values.get(&Attribute::SeriesInstanceUid)?));
    }
    if level == QueryLevel::Image {
        url.push_str(&format!("/instances/{}", found.values.get(&Attribute::SopInstanceUid)?));
    }
    Some(url)
}

/// What `principal` finds: a facility's own data and what others share with it, or, for an
/// administrator, every facility's own data. Across facilities each is asked for everything
/// up to the end of the page, and the page is cut from the results in facility order.
async fn find(state: &AppState, principal: &Principal, query: &Query) -> Result<Vec<QueryMatch>, Problem> {
    if let Some(reader) = reader(principal) {
        return Ok(state.archive.find_as(&reader, query).await?);
    }
    let to_page_end = query.through_page_end();
    let mut results = Vec::new();
    for facility in &visible_facilities(state, principal).await? {
        results.extend(state.archive.find(facility, &to_page_end).await?);
    }
    Ok(query.page(results))
}

async fn search(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    level: QueryLevel,
    scope: Vec<(Attribute, String)>,
    params: Vec<(String, String)>,
) -> Result<Response, Problem> {
    if !accepts_json(headers) {
        return Err(Problem::new(StatusCode::NOT_ACCEPTABLE, "search results are application/dicom+json"));
    }
    let scoped_study = scope.first().map(|(_, uid)| uid.clone());
    let query = build_query(level, scope, params)?;
    if let Some(study) = scoped_study {
        // A study the principal cannot see is a study that does not exist.
        let key =
            Matcher::parse(Attribute::StudyInstanceUid, &study).map_err(|e| Problem::bad_request(e.to_string()))?;
        let probe =
            Query::new(QueryLevel::Study, vec![QueryKey { attribute: Attribute::StudyInstanceUid, matcher: key }]);
        if find(state, principal, &probe).await?.is_empty() {
            return Err(Problem::not_found());
        }
    }
    let results: Vec<_> = find(state, principal, &query)
        .await?
        .iter()
        .map(|found| json::dataset(found, retrieve_url(headers, level, found)))
        .collect();
    let mut response = serde_json::Value::Array(results).to_string().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/dicom+json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn query_strings_become_queries() {
        let query = build_query(
            QueryLevel::Study,
            Vec::new(),
            params(&[
                ("PatientName", "やまだ*"),
                ("00080020", "20240101-"),
                ("StudyInstanceUID", "1.2,1.3"),
                ("limit", "5"),
                ("fuzzymatching", "true"),
                ("includefield", "all"),
            ]),
        )
        .expect("valid");
        assert_eq!(query.limit, Some(5));
        assert!(query.fuzzy);
        assert_eq!(query.keys.len(), 3);
        assert!(matches!(query.keys[2].matcher, Matcher::UidList(ref uids) if uids.len() == 2));
    }

    #[test]
    fn bad_keys_are_400s() {
        for bad in [[("StudyDate", "2024-01")], [("NoSuchKey", "x")], [("limit", "-1")], [("fuzzymatching", "maybe")]] {
            let error = build_query(QueryLevel::Study, Vec::new(), params(&bad)).expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn accept_negotiation() {
        let mut headers = HeaderMap::new();
        assert!(accepts_json(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/dicom+json; q=0.9, */*"));
        assert!(accepts_json(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("image/png"));
        assert!(!accepts_json(&headers));
    }
}
