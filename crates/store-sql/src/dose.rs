//! Radiation dose: the extractor's queue, the reports it read, exams, devices and protocol
//! mappings.

use renkei_domain::FacilityId;
use renkei_domain::dose::{
    AlertRule, Device, DoseKind, DoseReport, DoseSource, DoseWrite, Exam, ExamFilter, Grouping, KnownDevice, Metric,
    NewExam, PendingDose, ProtocolMapping, Quantiles, ReadImage, UnmappedDescription, WorkloadCell,
};
use renkei_store::StoreError;

use crate::instances::stored_instance;
use crate::{ColumnType, Dialect, Sql, Statement, Value, corrupt, placeholders};

const PENDING: &str = "\
    SELECT d.instance_pk, i.facility_id, s.pk, s.study_uid, se.series_uid, i.sop_instance_uid, i.sop_class_uid, \
      i.transfer_syntax, i.blob, i.size, s.study_date_key \
    FROM dose_pending d JOIN instance i ON i.pk = d.instance_pk JOIN series se ON se.pk = i.series_pk \
      JOIN study s ON s.pk = se.study_pk \
    WHERE d.queued_at <= ? ORDER BY d.queued_at, d.instance_pk LIMIT ?";

pub(crate) async fn pending(sql: &mut dyn Sql, queued_before: i64, limit: u32) -> Result<Vec<PendingDose>, StoreError> {
    use ColumnType::{Int, Text};
    let statement = sql.statement(PENDING).int(queued_before).int(i64::from(limit));
    let rows = sql.fetch_all(&statement, &[Int, Text, Int, Text, Text, Text, Text, Text, Text, Int, Text]).await?;
    rows.into_iter()
        .map(|mut row| {
            let instance = stored_instance(row.split_off(3))?;
            let [instance_pk, facility, study_pk] = <[Value; 3]>::try_from(row).map_err(|_| corrupt("pending row"))?;
            Ok(PendingDose {
                instance_pk: instance_pk.as_int().ok_or_else(|| corrupt("instance key"))?,
                facility: facility
                    .into_text()
                    .and_then(|f| FacilityId::new(&f).ok())
                    .ok_or_else(|| corrupt("facility"))?,
                study_pk: study_pk.as_int().ok_or_else(|| corrupt("study key"))?,
                instance,
            })
        })
        .collect()
}

fn report_json(report: &DoseReport) -> Result<String, StoreError> {
    serde_json::to_string(report).map_err(|_| corrupt("dose report"))
}

fn report_of(value: Value) -> Result<DoseReport, StoreError> {
    serde_json::from_str(&value.into_text().unwrap_or_default()).map_err(|_| corrupt("dose report"))
}

pub(crate) async fn study_reports(sql: &mut dyn Sql, study_pk: i64) -> Result<Vec<DoseReport>, StoreError> {
    let statement =
        sql.statement("SELECT report FROM dose_report WHERE study_pk = ? ORDER BY instance_pk").int(study_pk);
    let rows = sql.fetch_all(&statement, &[ColumnType::Text]).await?;
    rows.into_iter().map(|mut row| report_of(row.pop().unwrap_or(Value::Null))).collect()
}

pub(crate) async fn study_images(sql: &mut dyn Sql, study_pk: i64) -> Result<Vec<ReadImage>, StoreError> {
    let statement =
        sql.statement("SELECT instance_pk, dose FROM dose_image WHERE study_pk = ? ORDER BY instance_pk").int(study_pk);
    let rows = sql.fetch_all(&statement, &[ColumnType::Int, ColumnType::Text]).await?;
    rows.into_iter()
        .map(|row| {
            let [instance_pk, dose] = <[Value; 2]>::try_from(row).map_err(|_| corrupt("image dose"))?;
            Ok(ReadImage {
                instance_pk: instance_pk.as_int().ok_or_else(|| corrupt("image dose"))?,
                study_pk,
                dose: serde_json::from_str(&dose.into_text().unwrap_or_default()).map_err(|_| corrupt("image dose"))?,
            })
        })
        .collect()
}

/// Writes one extractor round; run it in a transaction.
pub(crate) async fn write(tx: &mut dyn Sql, write: &DoseWrite) -> Result<(), StoreError> {
    for read in &write.reports {
        let statement = tx
            .statement(
                "INSERT INTO dose_report (instance_pk, study_pk, kind, report) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (instance_pk) DO UPDATE SET study_pk = excluded.study_pk, kind = excluded.kind, \
                   report = excluded.report",
            )
            .int(read.instance_pk)
            .int(read.study_pk)
            .text(read.report.kind.as_str())
            .text(&report_json(&read.report)?);
        tx.execute(&statement).await?;
    }
    for read in &write.images {
        let dose = serde_json::to_string(&read.dose).map_err(|_| corrupt("image dose"))?;
        let statement = tx
            .statement(
                "INSERT INTO dose_image (instance_pk, study_pk, dose) VALUES (?, ?, ?) \
                 ON CONFLICT (instance_pk) DO UPDATE SET study_pk = excluded.study_pk, dose = excluded.dose",
            )
            .int(read.instance_pk)
            .int(read.study_pk)
            .text(&dose);
        tx.execute(&statement).await?;
    }
    for exam in &write.exams {
        write_exam(tx, exam).await?;
    }
    for chunk in write.done.chunks(256) {
        let text = format!("DELETE FROM dose_pending WHERE instance_pk IN ({})", placeholders(chunk.len()));
        tx.execute(&chunk.iter().fold(tx.statement(&text), |s, pk| s.int(*pk))).await?;
    }
    Ok(())
}

/// The device's key, recording it the first time it is seen (most exams come from a
/// device already known: one read, no write).
async fn device(tx: &mut dyn Sql, facility: &str, device: &Device) -> Result<i64, StoreError> {
    let fields = [
        &device.manufacturer,
        &device.model,
        &device.serial,
        &device.station,
        &device.institution,
        &device.observer_uid,
    ];
    let select = fields.iter().fold(
        tx.statement(
            "SELECT pk FROM dose_device WHERE facility_id = ? AND manufacturer = ? AND model = ? AND serial = ? \
             AND station = ? AND institution = ? AND observer_uid = ?",
        )
        .text(facility),
        |s, f| s.text(f),
    );
    let insert = fields.iter().fold(
        tx.statement(
            "INSERT INTO dose_device (facility_id, manufacturer, model, serial, station, institution, observer_uid) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING pk",
        )
        .text(facility),
        |s, f| s.text(f),
    );
    let row = match tx.fetch_optional(&select, &[ColumnType::Int]).await? {
        Some(row) => Some(row),
        None => tx.fetch_optional(&insert, &[ColumnType::Int]).await?,
    };
    row.and_then(|r| r.first().and_then(Value::as_int)).ok_or_else(|| corrupt("device"))
}

const WRITE_EXAM: &str = "\
    INSERT INTO dose_exam (facility_id, study_pk, patient_pk, kind, source, device_pk, started_at, description, \
      category, age_years, weight_kg, ctdivol, dlp, dap, dose_rp, fluoro_time, agd, activity, events, exam) \
    SELECT ?, s.pk, s.patient_pk, ?, ?, ?, CAST(? AS BIGINT), ?, \
      (SELECT m.category FROM dose_protocol m WHERE m.facility_id = s.facility_id AND m.kind = ? \
         AND m.description = ?), \
      CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), \
      CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), \
      CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), ?, ? \
    FROM study s WHERE s.pk = ? \
    ON CONFLICT (study_pk, kind) DO UPDATE SET source = excluded.source, device_pk = excluded.device_pk, \
      started_at = excluded.started_at, description = excluded.description, category = excluded.category, \
      age_years = excluded.age_years, weight_kg = excluded.weight_kg, ctdivol = excluded.ctdivol, \
      dlp = excluded.dlp, dap = excluded.dap, dose_rp = excluded.dose_rp, fluoro_time = excluded.fluoro_time, \
      agd = excluded.agd, activity = excluded.activity, events = excluded.events, exam = excluded.exam";

async fn write_exam(tx: &mut dyn Sql, exam: &NewExam) -> Result<(), StoreError> {
    let report = &exam.report;
    let facility = exam.facility.as_str();
    let device_pk = device(tx, facility, &report.device).await?;
    let kind = report.kind.as_str();
    let statement = tx
        .statement(WRITE_EXAM)
        .text(facility)
        .text(kind)
        .text(report.source.as_str())
        .int(device_pk)
        .bind(exam.started_at.map_or(Value::Null, Value::Int))
        .text(&exam.description)
        .text(kind)
        .text(&exam.description)
        .real(report.patient.age_years)
        .real(report.patient.weight_kg)
        .real(report.max_ctdivol())
        .real(report.totals.dlp)
        .real(report.totals.dap)
        .real(report.totals.dose_rp)
        .real(report.totals.fluoro_time)
        .real(report.largest_agd())
        .real(report.totals.activity)
        .int(i64::from(report.totals.events.unwrap_or(report.events.len() as u32)))
        .text(&report_json(report)?)
        .int(exam.study_pk);
    tx.execute(&statement).await?;
    Ok(())
}

pub(crate) async fn requeue(tx: &mut dyn Sql, sop_classes: &[&str], now: i64) -> Result<u64, StoreError> {
    for table in ["dose_report", "dose_image", "dose_exam", "dose_pending"] {
        tx.execute(&tx.statement(&format!("DELETE FROM {table}"))).await?;
    }
    if sop_classes.is_empty() {
        return Ok(0);
    }
    let list = placeholders(sop_classes.len());
    let text = format!(
        "INSERT INTO dose_pending (instance_pk, queued_at) SELECT pk, ? FROM instance WHERE sop_class_uid IN ({list})"
    );
    let statement = sop_classes.iter().fold(tx.statement(&text).int(now), |s, c| s.text(c));
    tx.execute(&statement).await
}

const EXAM: &str = "\
    e.pk, e.facility_id, s.study_uid, e.patient_pk, p.patient_id, e.kind, e.source, e.device_pk, \
    d.manufacturer, d.model, d.serial, d.station, d.institution, d.observer_uid, e.started_at, e.description, \
    e.category, e.age_years, e.weight_kg, e.ctdivol, e.dlp, e.dap, e.dose_rp, e.fluoro_time, e.agd, e.activity, \
    e.events";
const EXAM_FROM: &str = "dose_exam e JOIN study s ON s.pk = e.study_pk JOIN patient p ON p.pk = e.patient_pk \
    JOIN dose_device d ON d.pk = e.device_pk";
const EXAM_TYPES: [ColumnType; 27] = {
    use ColumnType::{Int, Real, Text};
    [
        Int, Text, Text, Int, Text, Text, Text, Int, Text, Text, Text, Text, Text, Text, Int, Text, Text, Real, Real,
        Real, Real, Real, Real, Real, Real, Real, Int,
    ]
};

fn exam(row: Vec<Value>) -> Result<Exam, StoreError> {
    let mut values = row.into_iter();
    let mut next = || values.next().unwrap_or(Value::Null);
    let int = |v: Value, what: &str| v.as_int().ok_or_else(|| corrupt(what));
    let text = |v: Value| v.into_text().unwrap_or_default();
    let id = int(next(), "exam key")?;
    let facility = text(next());
    let study_uid = text(next());
    let patient = int(next(), "patient key")?;
    let patient_id = text(next());
    let kind = DoseKind::parse(&text(next())).ok_or_else(|| corrupt("dose kind"))?;
    let source = DoseSource::parse(&text(next())).ok_or_else(|| corrupt("dose source"))?;
    let device_id = int(next(), "device key")?;
    let device = Device {
        manufacturer: text(next()),
        model: text(next()),
        serial: text(next()),
        station: text(next()),
        institution: text(next()),
        observer_uid: text(next()),
    };
    Ok(Exam {
        id,
        facility,
        study_uid,
        patient,
        patient_id,
        kind,
        source,
        device_id,
        device,
        started_at: next().as_int(),
        description: text(next()),
        category: next().into_text(),
        age_years: next().as_real(),
        weight_kg: next().as_real(),
        ctdivol: next().as_real(),
        dlp: next().as_real(),
        dap: next().as_real(),
        dose_rp: next().as_real(),
        fluoro_time: next().as_real(),
        agd: next().as_real(),
        activity: next().as_real(),
        events: next().as_int().unwrap_or(0) as u32,
    })
}

/// The conditions of an exam filter on `dose_exam e`, and their values.
/// How a filter's period is matched: through the time indexes (lists, newest first), or
/// not (distributions and the workload, which read the covering category index; a period
/// through `(category, started_at)` would send them to every exam's row for its metric).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Period {
    Indexed,
    Scanned,
}

fn conditions(filter: &ExamFilter, period: Period) -> (String, Vec<Value>) {
    let started_at = if period == Period::Indexed { "e.started_at" } else { "+e.started_at" };
    let mut conditions = vec!["1 = 1".to_owned()];
    let mut binds = Vec::new();
    if let Some(facility) = &filter.facility {
        conditions.push("e.facility_id = ?".into());
        binds.push(Value::Text(facility.as_str().to_owned()));
    }
    if !filter.patients.is_empty() {
        conditions.push(format!("e.patient_pk IN ({})", placeholders(filter.patients.len())));
        binds.extend(filter.patients.iter().map(|p| Value::Int(*p)));
    }
    if let Some(kind) = filter.kind {
        conditions.push("e.kind = ?".into());
        binds.push(Value::Text(kind.as_str().to_owned()));
    }
    if let Some(category) = &filter.category {
        conditions.push("e.category = ?".into());
        binds.push(Value::Text(category.clone()));
    }
    if let Some(device) = filter.device {
        conditions.push("e.device_pk = ?".into());
        binds.push(Value::Int(device));
    }
    if let Some(since) = filter.since {
        conditions.push(format!("{started_at} >= ?"));
        binds.push(Value::Int(since));
    }
    if let Some(until) = filter.until {
        conditions.push(format!("{started_at} < ?"));
        binds.push(Value::Int(until));
    }
    (conditions.join(" AND "), binds)
}

pub(crate) async fn exams(sql: &mut dyn Sql, filter: &ExamFilter) -> Result<Vec<Exam>, StoreError> {
    let (conditions, mut binds) = conditions(filter, Period::Indexed);
    let text =
        format!("SELECT {EXAM} FROM {EXAM_FROM} WHERE {conditions} ORDER BY e.started_at DESC, e.pk DESC LIMIT ?");
    binds.push(Value::Int(i64::from(filter.limit)));
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    sql.fetch_all(&statement, &EXAM_TYPES).await?.into_iter().map(exam).collect()
}

/// The column of a metric (from this fixed list, never from a request).
fn metric_column(metric: Metric) -> &'static str {
    match metric {
        Metric::Ctdivol => "e.ctdivol",
        Metric::Dlp => "e.dlp",
        Metric::DoseRp => "e.dose_rp",
        Metric::Dap => "e.dap",
        Metric::Agd => "e.agd",
        Metric::Activity => "e.activity",
    }
}

pub(crate) async fn quantiles(
    sql: &mut dyn Sql,
    filter: &ExamFilter,
    metric: Metric,
    by: Grouping,
) -> Result<Vec<Quantiles>, StoreError> {
    use ColumnType::{Int, Real, Text};
    let dialect = sql.dialect();
    let month = in_japan(dialect, "%Y-%m", "YYYY-MM");
    let (device, month) = match by {
        Grouping::Facility => ("CAST(NULL AS BIGINT)", "CAST(NULL AS TEXT)"),
        Grouping::Device => ("e.device_pk", "CAST(NULL AS TEXT)"),
        Grouping::Month => ("CAST(NULL AS BIGINT)", month.as_str()),
        Grouping::DeviceMonth => ("e.device_pk", month.as_str()),
    };
    let column = metric_column(metric);
    // Quartiles and median by linear interpolation between the two nearest ranks, computed in
    // the database: only one row per group leaves it. SQLite's are its percentile functions
    // (built in with SQLITE_ENABLE_PERCENTILE, see .cargo/config.toml).
    let percentile = |p: &str| match dialect {
        Dialect::Sqlite => format!("percentile_cont({column}, {p})"),
        Dialect::Postgres => format!("percentile_cont({p}) WITHIN GROUP (ORDER BY {column})"),
    };
    let (q1, median, q3) = (percentile("0.25"), percentile("0.5"), percentile("0.75"));
    let (conditions, binds) = conditions(filter, Period::Scanned);
    let text = format!(
        "SELECT e.facility_id, {device}, {month}, COUNT(*), MIN({column}), {q1}, {median}, {q3}, MAX({column}) \
         FROM dose_exam e WHERE {column} IS NOT NULL AND {conditions} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    );
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    let rows = sql.fetch_all(&statement, &[Text, Int, Text, Int, Real, Real, Real, Real, Real]).await?;
    rows.into_iter()
        .map(|row| {
            let [facility, device, month, n, min, q1, median, q3, max] =
                <[Value; 9]>::try_from(row).map_err(|_| corrupt("quantile row"))?;
            let real = |v: Value| v.as_real().ok_or_else(|| corrupt("quantile row"));
            Ok(Quantiles {
                facility: facility.into_text().unwrap_or_default(),
                device_id: device.as_int(),
                month: month.into_text(),
                exams: n.as_int().unwrap_or(0) as u64,
                min: real(min)?,
                q1: real(q1)?,
                median: real(median)?,
                q3: real(q3)?,
                max: real(max)?,
            })
        })
        .collect()
}

/// `format` (strftime's, then PostgreSQL's `to_char`'s) of an exam's start in Japan (UTC+9).
fn in_japan(dialect: Dialect, strftime: &str, to_char: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("strftime('{strftime}', e.started_at + 32400, 'unixepoch')"),
        Dialect::Postgres => format!("to_char(to_timestamp(e.started_at + 32400) AT TIME ZONE 'UTC', '{to_char}')"),
    }
}

pub(crate) async fn workload(sql: &mut dyn Sql, filter: &ExamFilter) -> Result<Vec<WorkloadCell>, StoreError> {
    // Weekday and hour, both in Japan. strftime's %w counts from Sunday 0, to_char's D from Sunday 1.
    let dialect = sql.dialect();
    let weekday = in_japan(dialect, "%w", "D");
    let hour = in_japan(dialect, "%H", "HH24");
    let sunday = if dialect == Dialect::Postgres { 1 } else { 0 };
    let (conditions, binds) = conditions(filter, Period::Scanned);
    let text = format!(
        "SELECT {weekday}, {hour}, COUNT(*) FROM dose_exam e WHERE e.started_at IS NOT NULL AND {conditions} \
         GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    let rows = sql.fetch_all(&statement, &[ColumnType::Text, ColumnType::Text, ColumnType::Int]).await?;
    rows.into_iter()
        .map(|row| {
            let [weekday, hour, exams] = <[Value; 3]>::try_from(row).map_err(|_| corrupt("workload row"))?;
            let number =
                |v: Value| v.into_text().and_then(|t| t.parse::<u8>().ok()).ok_or_else(|| corrupt("workload row"));
            Ok(WorkloadCell {
                weekday: number(weekday)?.checked_sub(sunday).ok_or_else(|| corrupt("workload row"))?,
                hour: number(hour)?,
                exams: exams.as_int().unwrap_or(0) as u64,
            })
        })
        .collect()
}

pub(crate) async fn devices(sql: &mut dyn Sql, facility: Option<&FacilityId>) -> Result<Vec<KnownDevice>, StoreError> {
    use ColumnType::{Int, Text};
    let facility = facility.map(FacilityId::as_str);
    let statement = sql
        .statement(
            "SELECT pk, facility_id, manufacturer, model, serial, station, institution, observer_uid FROM dose_device \
             WHERE (? IS NULL OR facility_id = ?) ORDER BY facility_id, pk",
        )
        .bind(Value::text(facility))
        .bind(Value::text(facility));
    let rows = sql.fetch_all(&statement, &[Int, Text, Text, Text, Text, Text, Text, Text]).await?;
    rows.into_iter()
        .map(|row| {
            let mut values = row.into_iter();
            let id = values.next().and_then(|v| v.as_int()).ok_or_else(|| corrupt("device key"))?;
            let mut text = || values.next().and_then(Value::into_text).unwrap_or_default();
            Ok(KnownDevice {
                id,
                facility: text(),
                device: Device {
                    manufacturer: text(),
                    model: text(),
                    serial: text(),
                    station: text(),
                    institution: text(),
                    observer_uid: text(),
                },
            })
        })
        .collect()
}

pub(crate) async fn exam_report(sql: &mut dyn Sql, id: i64) -> Result<Option<(Exam, DoseReport)>, StoreError> {
    let text = format!("SELECT {EXAM}, e.exam FROM {EXAM_FROM} WHERE e.pk = ?");
    let mut types = EXAM_TYPES.to_vec();
    types.push(ColumnType::Text);
    let Some(mut row) = sql.fetch_optional(&sql.statement(&text).int(id), &types).await? else {
        return Ok(None);
    };
    let report = report_of(row.pop().unwrap_or(Value::Null))?;
    Ok(Some((exam(row)?, report)))
}

pub(crate) async fn map_protocol(tx: &mut dyn Sql, mapping: &ProtocolMapping) -> Result<u64, StoreError> {
    let upsert = tx
        .statement(
            "INSERT INTO dose_protocol (facility_id, kind, description, category, confirmed_by, confirmed_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (facility_id, kind, description) DO UPDATE SET \
               category = excluded.category, confirmed_by = excluded.confirmed_by, \
               confirmed_at = excluded.confirmed_at",
        )
        .text(&mapping.facility)
        .text(mapping.kind.as_str())
        .text(&mapping.description)
        .bind(Value::text(mapping.category.as_deref()))
        .text(&mapping.confirmed_by)
        .int(mapping.confirmed_at);
    tx.execute(&upsert).await?;
    let apply = tx
        .statement("UPDATE dose_exam SET category = ? WHERE facility_id = ? AND kind = ? AND description = ?")
        .bind(Value::text(mapping.category.as_deref()))
        .text(&mapping.facility)
        .text(mapping.kind.as_str())
        .text(&mapping.description);
    tx.execute(&apply).await
}

pub(crate) async fn protocol_mappings(
    sql: &mut dyn Sql,
    facility: Option<&FacilityId>,
) -> Result<Vec<ProtocolMapping>, StoreError> {
    use ColumnType::{Int, Text};
    let statement = sql
        .statement(
            "SELECT facility_id, kind, description, category, confirmed_by, confirmed_at FROM dose_protocol \
             WHERE (? IS NULL OR facility_id = ?) ORDER BY facility_id, kind, description",
        )
        .bind(Value::text(facility.map(FacilityId::as_str)))
        .bind(Value::text(facility.map(FacilityId::as_str)));
    let rows = sql.fetch_all(&statement, &[Text, Text, Text, Text, Text, Int]).await?;
    rows.into_iter()
        .map(|row| {
            let [facility, kind, description, category, by, at] =
                <[Value; 6]>::try_from(row).map_err(|_| corrupt("protocol mapping"))?;
            Ok(ProtocolMapping {
                facility: facility.into_text().unwrap_or_default(),
                kind: kind.into_text().and_then(|k| DoseKind::parse(&k)).ok_or_else(|| corrupt("dose kind"))?,
                description: description.into_text().unwrap_or_default(),
                category: category.into_text(),
                confirmed_by: by.into_text().unwrap_or_default(),
                confirmed_at: at.as_int().unwrap_or(0),
            })
        })
        .collect()
}

pub(crate) async fn unmapped(
    sql: &mut dyn Sql,
    facility: Option<&FacilityId>,
    kind: Option<DoseKind>,
    limit: u32,
) -> Result<Vec<UnmappedDescription>, StoreError> {
    use ColumnType::{Int, Text};
    let facility = facility.map(FacilityId::as_str);
    let kind = kind.map(DoseKind::as_str);
    let statement = sql
        .statement(
            "SELECT e.facility_id, e.kind, e.description, COUNT(*) FROM dose_exam e \
             WHERE (? IS NULL OR e.facility_id = ?) AND (? IS NULL OR e.kind = ?) \
               AND NOT EXISTS (SELECT 1 FROM dose_protocol m WHERE m.facility_id = e.facility_id \
                 AND m.kind = e.kind AND m.description = e.description) \
             GROUP BY e.facility_id, e.kind, e.description ORDER BY COUNT(*) DESC, e.description LIMIT ?",
        )
        .bind(Value::text(facility))
        .bind(Value::text(facility))
        .bind(Value::text(kind))
        .bind(Value::text(kind))
        .int(i64::from(limit));
    let rows = sql.fetch_all(&statement, &[Text, Text, Text, Int]).await?;
    rows.into_iter()
        .map(|row| {
            let [facility, kind, description, exams] =
                <[Value; 4]>::try_from(row).map_err(|_| corrupt("unmapped description"))?;
            Ok(UnmappedDescription {
                facility: facility.into_text().unwrap_or_default(),
                kind: kind.into_text().and_then(|k| DoseKind::parse(&k)).ok_or_else(|| corrupt("dose kind"))?,
                description: description.into_text().unwrap_or_default(),
                exams: exams.as_int().unwrap_or(0) as u64,
            })
        })
        .collect()
}

pub(crate) async fn set_alert_rule(
    tx: &mut dyn Sql,
    facility: &FacilityId,
    metric: Metric,
    weeks: u32,
    rule: Option<&AlertRule>,
) -> Result<(), StoreError> {
    let remove = tx
        .statement("DELETE FROM dose_alert_rule WHERE facility_id = ? AND metric = ? AND weeks = ?")
        .text(facility.as_str())
        .text(metric.as_str())
        .int(i64::from(weeks));
    tx.execute(&remove).await?;
    if let Some(rule) = rule {
        let insert = tx
            .statement(
                "INSERT INTO dose_alert_rule (facility_id, metric, weeks, threshold, set_by, set_at) \
                 VALUES (?, ?, ?, CAST(? AS DOUBLE PRECISION), ?, ?)",
            )
            .text(facility.as_str())
            .text(metric.as_str())
            .int(i64::from(weeks))
            .real(Some(rule.threshold))
            .text(&rule.set_by)
            .int(rule.set_at);
        tx.execute(&insert).await?;
    }
    Ok(())
}

pub(crate) async fn alert_rules(
    sql: &mut dyn Sql,
    facility: Option<&FacilityId>,
) -> Result<Vec<AlertRule>, StoreError> {
    use ColumnType::{Int, Real, Text};
    let facility = facility.map(FacilityId::as_str);
    let statement = sql
        .statement(
            "SELECT facility_id, metric, weeks, threshold, set_by, set_at FROM dose_alert_rule \
             WHERE (? IS NULL OR facility_id = ?) ORDER BY facility_id, metric, weeks",
        )
        .bind(Value::text(facility))
        .bind(Value::text(facility));
    let rows = sql.fetch_all(&statement, &[Text, Text, Int, Real, Text, Int]).await?;
    rows.into_iter()
        .map(|row| {
            let [facility, metric, weeks, threshold, by, at] =
                <[Value; 6]>::try_from(row).map_err(|_| corrupt("alert rule"))?;
            Ok(AlertRule {
                facility: facility.into_text().unwrap_or_default(),
                metric: metric.into_text().and_then(|m| Metric::parse(&m)).ok_or_else(|| corrupt("metric"))?,
                weeks: weeks.as_int().unwrap_or(0) as u32,
                threshold: threshold.as_real().ok_or_else(|| corrupt("threshold"))?,
                set_by: by.into_text().unwrap_or_default(),
                set_at: at.as_int().unwrap_or(0),
            })
        })
        .collect()
}
