//! Radiation dose under `/api/dose`: exams (a list, one with its events and its DRL
//! comparison, CSV), a patient's history, distributions, alerts and their thresholds, the
//! Japanese DRL tables, each facility's protocol mapping, and the cross-facility benchmark.
//! Metrics are in canonical units (see `renkei_domain::dose`); times are Unix seconds.
//!
//! A facility's token sees its own exams; an administrator's sees every facility's, or
//! one with `facility=`. Only an administrator confirms protocol mappings or reads the
//! benchmark; a facility's uploader sets its own thresholds.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_domain::FacilityId;
use renkei_domain::dose::{
    AlertRule, DoseKind, Exam, ExamFilter, Grouping, KnownDevice, Metric, ProtocolMapping, Quantiles,
};
use renkei_domain::model::{Principal, Role};
use renkei_dose::drl;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::token_kind;
use crate::problem::Problem;

const DEFAULT_LIMIT: u32 = 1000;
const LONGEST_LIST: u32 = 100_000;

/// The facility a request reads: a facility's own, or for an administrator the one named
/// (none: every facility).
fn scope(principal: &Principal, named: Option<&str>) -> Result<Option<FacilityId>, Problem> {
    match (&principal.facility, named) {
        (Some(own), None) => Ok(Some(own.clone())),
        (Some(own), Some(named)) if named == own.as_str() => Ok(Some(own.clone())),
        (Some(_), Some(_)) => Err(Problem::new(StatusCode::FORBIDDEN, "a facility's token reads that facility only")),
        (None, named) => named.map(FacilityId::new).transpose().map_err(|e| Problem::bad_request(e.to_string())),
    }
}

fn parse_kind(value: &str) -> Result<DoseKind, Problem> {
    DoseKind::parse(value)
        .ok_or_else(|| Problem::bad_request(format!("unknown kind {value}: ct, projection, mammography or nm")))
}

fn kind(value: Option<&str>) -> Result<Option<DoseKind>, Problem> {
    value.map(parse_kind).transpose()
}

/// Which exams a list, a distribution or the workload covers (all of the caller's by
/// default); `limit` bounds lists only.
#[derive(Deserialize)]
pub struct ExamQuery {
    facility: Option<String>,
    kind: Option<String>,
    category: Option<String>,
    device: Option<i64>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
}

impl ExamQuery {
    fn filter(&self, principal: &Principal) -> Result<ExamFilter, Problem> {
        Ok(ExamFilter {
            facility: scope(principal, self.facility.as_deref())?,
            patients: Vec::new(),
            kind: kind(self.kind.as_deref())?,
            category: self.category.clone(),
            device: self.device,
            since: self.since,
            until: self.until,
            limit: self.limit.unwrap_or(DEFAULT_LIMIT).min(LONGEST_LIST),
        })
    }
}

/// An exam with how it compares with its DRL.
fn exam_json(exam: &Exam) -> Value {
    let (edition, comparisons) = drl::compare_exam(exam);
    let mut value = serde_json::to_value(exam).unwrap_or(Value::Null);
    value["device"]["label"] = json!(exam.device.label());
    value["drl"] = json!({
        "edition": edition.edition,
        "comparisons": comparisons,
        "exceeds": comparisons.iter().any(drl::Comparison::exceeds),
    });
    value
}

/// `GET /api/dose/exams`: exams, newest first.
pub async fn exams(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ExamQuery>,
) -> Result<Response, Problem> {
    let exams = state.archive.exams(&query.filter(&principal)?).await?;
    Ok(Json(exams.iter().map(exam_json).collect::<Vec<_>>()).into_response())
}

/// `GET /api/dose/exams.csv`: the same, as CSV (UTF-8 with a byte-order mark, which
/// spreadsheet software in Japan needs to read the kanji).
pub async fn exams_csv(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ExamQuery>,
) -> Result<Response, Problem> {
    let exams = state.archive.exams(&query.filter(&principal)?).await?;
    let mut csv = String::from(
        "\u{feff}facility,study_uid,patient_id,kind,source,device,started_at,description,category,age_years,weight_kg,\
         ctdivol_mgy,dlp_mgy_cm,dap_gy_cm2,dose_rp_mgy,fluoro_time_s,agd_mgy,activity_mbq,events,drl_edition,exceeds_drl\r\n",
    );
    let number = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for exam in &exams {
        let (edition, comparisons) = drl::compare_exam(exam);
        let fields = [
            exam.facility.clone(),
            exam.study_uid.clone(),
            exam.patient_id.clone(),
            exam.kind.as_str().to_owned(),
            exam.source.as_str().to_owned(),
            exam.device.label(),
            exam.started_at.map(|t| t.to_string()).unwrap_or_default(),
            exam.description.clone(),
            exam.category.clone().unwrap_or_default(),
            number(exam.age_years),
            number(exam.weight_kg),
            number(exam.ctdivol),
            number(exam.dlp),
            number(exam.dap),
            number(exam.dose_rp),
            number(exam.fluoro_time),
            number(exam.agd),
            number(exam.activity),
            exam.events.to_string(),
            edition.edition.clone(),
            comparisons.iter().any(drl::Comparison::exceeds).to_string(),
        ];
        let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&quoted.join(","));
        csv.push_str("\r\n");
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

/// A CSV field, quoted when it must be (RFC 4180); a leading `=`, `+`, `-` or `@` is
/// defused so that a description cannot become a spreadsheet formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\r', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// `GET /api/dose/exams/{id}`: one exam, its merged report (events, device, notes) and
/// its DRL comparison.
pub async fn exam(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<Response, Problem> {
    let (exam, report) = state.archive.exam(id, principal.facility.as_ref()).await?;
    let mut value = exam_json(&exam);
    value["report"] = serde_json::to_value(&report).unwrap_or(Value::Null);
    Ok(Json(value).into_response())
}

/// `GET /api/dose/drl`: the shipped DRL editions and their categories.
pub async fn drl_tables() -> Response {
    Json(json!({ "editions": drl::editions(), "current": drl::current().edition, "categories": drl::categories() }))
        .into_response()
}

#[derive(Deserialize)]
pub struct ProtocolQuery {
    facility: Option<String>,
    kind: Option<String>,
}

/// `GET /api/dose/protocols`: the facility's confirmed mappings, and the descriptions
/// still unmapped with suggested categories.
pub async fn protocols(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ProtocolQuery>,
) -> Result<Response, Problem> {
    let facility = scope(&principal, query.facility.as_deref())?;
    let kind = kind(query.kind.as_deref())?;
    let mappings = state.archive.protocol_mappings(facility.as_ref()).await?;
    let unmapped = state.archive.unmapped_descriptions(facility.as_ref(), kind, 500).await?;
    let unmapped: Vec<Value> = unmapped
        .iter()
        .map(|u| {
            let suggestions: Vec<Value> = drl::suggest(u.kind, &[&u.description])
                .into_iter()
                .take(3)
                .map(|(category, score)| json!({ "category": category, "score": score }))
                .collect();
            json!({ "facility": u.facility, "kind": u.kind, "description": u.description, "exams": u.exams,
                    "suggestions": suggestions })
        })
        .collect();
    Ok(Json(json!({ "mappings": mappings, "unmapped": unmapped })).into_response())
}

#[derive(Deserialize)]
pub struct MappingRequest {
    facility: String,
    kind: String,
    description: String,
    /// Absent or null: confirmed as matching no category.
    category: Option<String>,
    /// Who confirmed it.
    by: String,
}

/// `POST /api/dose/protocols`: an administrator confirms a description's category.
pub async fn map_protocol(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(request): Json<MappingRequest>,
) -> Result<Response, Problem> {
    if principal.role != Role::Admin {
        return Err(Problem::new(StatusCode::FORBIDDEN, "an administrator confirms protocol mappings"));
    }
    if request.by.trim().is_empty() {
        return Err(Problem::bad_request("who confirms the mapping is required"));
    }
    let facility = FacilityId::new(&request.facility).map_err(|e| Problem::bad_request(e.to_string()))?;
    let mapping = ProtocolMapping {
        facility: facility.as_str().to_owned(),
        kind: parse_kind(&request.kind)?,
        description: request.description,
        category: request.category.filter(|c| !c.is_empty()),
        confirmed_by: format!("{} ({})", request.by.trim(), token_kind(&principal)),
        confirmed_at: renkei_service::now_unix(),
    };
    let applied = state.archive.map_protocol(&mapping).await?;
    Ok(Json(json!({ "mapping": mapping, "exams": applied })).into_response())
}

#[derive(Deserialize)]
pub struct DistributionQuery {
    /// `ctdivol`, `dlp`, `dose_rp`, `dap`, `agd` or `activity`.
    metric: String,
    /// `facility`, `device` (default), `month` or `device_month`.
    by: Option<String>,
}

fn metric(value: &str) -> Result<Metric, Problem> {
    Metric::parse(value).ok_or_else(|| Problem::bad_request(format!("unknown metric {value}")))
}

/// The adult level of `category` for `metric` in the current edition, if it has one.
fn level(category: Option<&str>, metric: Metric) -> Option<f64> {
    drl::current().levels_for(category?, None).find(|l| l.metric == metric).map(|l| l.value)
}

/// Distributions with their devices named and each median's ratio to the level.
fn distributions(quantiles: &[Quantiles], devices: &[KnownDevice], level: Option<f64>) -> Vec<Value> {
    quantiles
        .iter()
        .map(|q| {
            let mut value = serde_json::to_value(q).unwrap_or(Value::Null);
            if let Some(device) = q.device_id.and_then(|id| devices.iter().find(|d| d.id == id)) {
                value["device"] = json!(device.device.label());
            }
            value["ratio"] = json!(level.map(|level| q.median / level));
            value
        })
        .collect()
}

/// `GET /api/dose/distribution`: a facility's distribution of one metric per device (or
/// per month, or for the facility), with the DRL level of the category.
pub async fn distribution(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(exams): Query<ExamQuery>,
    Query(query): Query<DistributionQuery>,
) -> Result<Response, Problem> {
    let metric = metric(&query.metric)?;
    let by = match query.by.as_deref() {
        None | Some("device") => Grouping::Device,
        Some("month") => Grouping::Month,
        Some("facility") => Grouping::Facility,
        Some("device_month") => Grouping::DeviceMonth,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "unknown grouping {other}: device, month, device_month or facility"
            )));
        }
    };
    let filter = exams.filter(&principal)?;
    let quantiles = state.archive.dose_quantiles(&filter, metric, by).await?;
    let devices = state.archive.dose_devices(filter.facility.as_ref()).await?;
    let level = level(filter.category.as_deref(), metric);
    Ok(Json(json!({
        "metric": metric, "unit": metric.unit(), "category": filter.category, "level": level,
        "edition": drl::current().edition, "groups": distributions(&quantiles, &devices, level),
    }))
    .into_response())
}

/// `GET /api/dose/workload`: how many exams started in each weekday and hour (Japan time),
/// for staffing and scheduling: a facility's own, or for an administrator any or all.
pub async fn workload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(exams): Query<ExamQuery>,
) -> Result<Response, Problem> {
    let cells = state.archive.dose_workload(&exams.filter(&principal)?).await?;
    let exams: u64 = cells.iter().map(|c| c.exams).sum();
    Ok(Json(json!({ "exams": exams, "cells": cells })).into_response())
}

#[derive(Deserialize)]
pub struct BenchmarkQuery {
    category: String,
    metric: String,
    since: Option<i64>,
    until: Option<i64>,
}

/// `GET /api/dose/benchmark`: every facility's and every device's distribution of one
/// metric for one DRL category, medians against the level. Administrators only: it puts
/// facilities side by side.
pub async fn benchmark(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<BenchmarkQuery>,
) -> Result<Response, Problem> {
    if principal.role != Role::Admin || principal.facility.is_some() {
        return Err(Problem::new(StatusCode::FORBIDDEN, "the cross-facility benchmark is for administrators"));
    }
    let metric = metric(&query.metric)?;
    let filter = ExamFilter {
        category: Some(query.category.clone()),
        since: query.since,
        until: query.until,
        ..ExamFilter::default()
    };
    let (facilities, devices) = tokio::try_join!(
        state.archive.dose_quantiles(&filter, metric, Grouping::Facility),
        state.archive.dose_quantiles(&filter, metric, Grouping::Device),
    )?;
    let known = state.archive.dose_devices(None).await?;
    let level = level(Some(&query.category), metric);
    Ok(Json(json!({
        "category": query.category, "metric": metric, "unit": metric.unit(), "level": level,
        "edition": drl::current().edition,
        "facilities": distributions(&facilities, &known, level),
        "devices": distributions(&devices, &known, level),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    /// The patient's facility (a facility's token: its own, the default).
    facility: Option<String>,
    patient_id: String,
    #[serde(default)]
    issuer: String,
}

/// `GET /api/dose/history`: a patient's exams over time, oldest first, with running totals
/// of each metric (for an administrator, across the person's records in every facility).
pub async fn history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, Problem> {
    let facility = match scope(&principal, query.facility.as_deref())? {
        Some(facility) => facility,
        None => return Err(Problem::bad_request("an administrator names the patient's facility")),
    };
    let (record, exams) = state.archive.dose_history(&principal, &facility, &query.patient_id, &query.issuer).await?;
    let mut totals: Vec<(Metric, f64)> = Vec::new();
    let listed: Vec<Value> = exams
        .iter()
        .map(|exam| {
            for metric in Metric::ALL {
                if let Some(value) = metric.of_exam(exam) {
                    match totals.iter_mut().find(|(m, _)| *m == metric) {
                        Some((_, total)) => *total += value,
                        None => totals.push((metric, value)),
                    }
                }
            }
            exam_json(exam)
        })
        .collect();
    let totals: serde_json::Map<String, Value> =
        totals.into_iter().map(|(metric, total)| (metric.as_str().to_owned(), json!(total))).collect();
    Ok(Json(json!({
        "patient": { "facility": record.facility.as_str(), "patient_id": record.patient_id, "name": record.name },
        "exams": listed,
        "totals": totals,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct AlertQuery {
    facility: Option<String>,
    /// From (default: 90 days ago), Unix seconds.
    since: Option<i64>,
    /// Until (default: now).
    until: Option<i64>,
}

/// `GET /api/dose/alerts`: exams of the period over their DRL or a threshold (with the
/// reasons), and patients over a cumulative threshold.
pub async fn alerts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<AlertQuery>,
) -> Result<Response, Problem> {
    let facility = scope(&principal, query.facility.as_deref())?;
    let now = renkei_service::now_unix();
    let (since, until) = (query.since.unwrap_or(now - 90 * 86_400), query.until.unwrap_or(now + 1));
    let found = state.archive.dose_alerts(facility.as_ref(), since, until).await?;
    let exams: Vec<Value> = found
        .exams
        .iter()
        .map(|(exam, reasons)| {
            let mut value = exam_json(exam);
            value["reasons"] = json!(reasons);
            value
        })
        .collect();
    Ok(Json(json!({ "since": since, "until": until, "exams": exams, "patients": found.patients, "rules": found.rules,
                "complete": found.complete }))
    .into_response())
}

/// `GET /api/dose/alert-rules`: a facility's thresholds (every facility's for an
/// administrator).
pub async fn alert_rules(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ProtocolQuery>,
) -> Result<Response, Problem> {
    let facility = scope(&principal, query.facility.as_deref())?;
    Ok(Json(state.archive.alert_rules(facility.as_ref()).await?).into_response())
}

#[derive(Deserialize)]
pub struct AlertRuleRequest {
    /// For an administrator's token: the facility.
    facility: Option<String>,
    metric: String,
    /// 0 (the default): per exam; otherwise a patient's sum over this many weeks.
    #[serde(default)]
    weeks: u32,
    /// Null: remove the rule.
    threshold: Option<f64>,
    by: String,
}

/// `POST /api/dose/alert-rules`: sets or removes a facility's threshold. A facility's
/// uploader sets its own; an administrator any facility's.
pub async fn set_alert_rule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(request): Json<AlertRuleRequest>,
) -> Result<Response, Problem> {
    if principal.role == Role::Viewer {
        return Err(Problem::new(StatusCode::FORBIDDEN, "a viewer's token may not set alert thresholds"));
    }
    if request.by.trim().is_empty() {
        return Err(Problem::bad_request("who sets the threshold is required"));
    }
    let Some(facility) = scope(&principal, request.facility.as_deref())? else {
        return Err(Problem::bad_request("an administrator names the facility"));
    };
    let metric = metric(&request.metric)?;
    let rule = request.threshold.map(|threshold| AlertRule {
        facility: facility.as_str().to_owned(),
        metric,
        weeks: request.weeks,
        threshold,
        set_by: format!("{} ({})", request.by.trim(), token_kind(&principal)),
        set_at: renkei_service::now_unix(),
    });
    state.archive.set_alert_rule(&facility, metric, request.weeks, rule.as_ref()).await?;
    Ok(Json(json!({ "rule": rule })).into_response())
}
