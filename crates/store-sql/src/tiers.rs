//! Tiers, lifecycle candidates, the retrieval log and job leases.

use renkei_domain::FacilityId;
use renkei_domain::model::BlobHash;
use renkei_domain::tier::{Access, AccessCount, AgeBucket, BlobRef, ColdRule, Tier, TierStats};
use renkei_store::StoreError;

use crate::{ColumnType, Sql, Statement, Value, corrupt, now_unix};

fn blob_refs(rows: Vec<Vec<Value>>) -> Result<Vec<BlobRef>, StoreError> {
    let mut blobs = Vec::with_capacity(rows.len());
    for row in rows {
        let Ok([blob, size]) = <[Value; 2]>::try_from(row) else { return Err(corrupt("blob row")) };
        blobs.push(BlobRef {
            blob: BlobHash(blob.into_text().ok_or_else(|| corrupt("blob"))?),
            size: size.as_int().ok_or_else(|| corrupt("size"))? as u64,
        });
    }
    Ok(blobs)
}

/// The time a study last mattered: its last retrieval, or else its newest instance's arrival.
const LAST_USED: &str = "COALESCE(s.accessed_at, (SELECT MAX(x.received_at) FROM series y \
    JOIN instance x ON x.series_pk = y.pk WHERE y.study_pk = s.pk))";

pub(crate) async fn cold_candidates(
    sql: &mut dyn Sql,
    facility: &FacilityId,
    rule: &ColdRule,
    limit: u32,
) -> Result<Vec<BlobRef>, StoreError> {
    let mut conditions = Vec::new();
    let mut binds = vec![Value::Text(facility.as_str().to_owned())];
    if let Some(date) = &rule.dated_before {
        conditions.push("(s.study_date_key <> '' AND s.study_date_key < ?)".to_owned());
        binds.push(Value::Text(date.clone()));
    }
    if let Some(since) = rule.idle_since {
        conditions.push(format!("{LAST_USED} < ?"));
        binds.push(Value::Int(since));
    }
    if conditions.is_empty() {
        return Ok(Vec::new());
    }
    binds.push(Value::Int(i64::from(limit)));
    let text = format!(
        "SELECT i.blob, MAX(i.size) FROM study s JOIN series se ON se.study_pk = s.pk \
         JOIN instance i ON i.series_pk = se.pk \
         WHERE s.facility_id = ? AND ({}) AND NOT EXISTS (SELECT 1 FROM cold_blob c WHERE c.blob = i.blob) \
         GROUP BY i.blob ORDER BY i.blob LIMIT ?",
        conditions.join(" OR ")
    );
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    blob_refs(sql.fetch_all(&statement, &[ColumnType::Text, ColumnType::Int]).await?)
}

pub(crate) async fn mark_cold(sql: &mut dyn Sql, blob: &BlobRef) -> Result<(), StoreError> {
    let statement = sql
        .statement("INSERT INTO cold_blob (blob, size, moved_at) VALUES (?, ?, ?) ON CONFLICT (blob) DO NOTHING")
        .text(&blob.blob.0)
        .int(blob.size as i64)
        .int(now_unix());
    sql.execute(&statement).await.map(drop)
}

pub(crate) async fn cold_blobs_of_patient(
    sql: &mut dyn Sql,
    facility: &FacilityId,
    patient_id: &str,
    except_study: &str,
) -> Result<Vec<BlobRef>, StoreError> {
    let statement = sql
        .statement(
            "SELECT DISTINCT i.blob, i.size FROM patient p JOIN study s ON s.patient_pk = p.pk \
             JOIN series se ON se.study_pk = s.pk JOIN instance i ON i.series_pk = se.pk \
             JOIN cold_blob c ON c.blob = i.blob \
             WHERE p.facility_id = ? AND p.patient_id = ? AND s.study_uid <> ?",
        )
        .text(facility.as_str())
        .text(patient_id)
        .text(except_study);
    blob_refs(sql.fetch_all(&statement, &[ColumnType::Text, ColumnType::Int]).await?)
}

pub(crate) async fn tier_stats(sql: &mut dyn Sql) -> Result<Vec<TierStats>, StoreError> {
    use ColumnType::{Int, Text};
    let statement = sql.statement(
        "SELECT i.facility_id, CASE WHEN c.blob IS NULL THEN 'hot' ELSE 'cold' END AS tier, COUNT(*), \
           CAST(COALESCE(SUM(i.size), 0) AS BIGINT) \
         FROM instance i LEFT JOIN cold_blob c ON c.blob = i.blob \
         GROUP BY i.facility_id, tier ORDER BY i.facility_id, tier DESC",
    );
    let mut stats = Vec::new();
    for row in sql.fetch_all(&statement, &[Text, Text, Int, Int]).await? {
        let Ok([facility, tier, instances, bytes]) = <[Value; 4]>::try_from(row) else {
            return Err(corrupt("tier counts"));
        };
        let tier = match tier.into_text().as_deref() {
            Some("cold") => Tier::Cold,
            _ => Tier::Hot,
        };
        stats.push(TierStats {
            facility: facility.into_text().unwrap_or_default(),
            tier,
            instances: instances.as_int().unwrap_or(0) as u64,
            bytes: bytes.as_int().unwrap_or(0) as u64,
        });
    }
    Ok(stats)
}

/// Logs retrievals; run it in a transaction.
pub(crate) async fn record_accesses(tx: &mut dyn Sql, accesses: &[Access]) -> Result<(), StoreError> {
    for access in accesses {
        let log = tx
            .statement("INSERT INTO access_log (facility_id, study_uid, age_days, accessed_at) VALUES (?, ?, ?, ?)")
            .text(&access.facility)
            .text(&access.study_uid)
            .bind(access.age_days.map_or(Value::Null, Value::Int))
            .int(access.at);
        tx.execute(&log).await?;
        let touch = tx
            .statement("UPDATE study SET accessed_at = ? WHERE facility_id = ? AND study_uid = ?")
            .int(access.at)
            .text(&access.facility)
            .text(&access.study_uid);
        tx.execute(&touch).await?;
    }
    Ok(())
}

pub(crate) async fn access_report(sql: &mut dyn Sql, since: i64) -> Result<Vec<AccessCount>, StoreError> {
    use ColumnType::{Int, Text};
    // The bounds come from the domain's buckets, so the report and the rule agree.
    let mut cases = String::from("CASE WHEN age_days IS NULL THEN ?");
    let mut binds = vec![Value::Text(AgeBucket::Undated.label().to_owned())];
    for bucket in AgeBucket::ALL {
        if let Some(below) = bucket.below_days() {
            cases.push_str(" WHEN age_days < ? THEN ?");
            binds.extend([Value::Int(below), Value::Text(bucket.label().to_owned())]);
        }
    }
    cases.push_str(" ELSE ? END");
    binds.push(Value::Text(AgeBucket::OverFiveYears.label().to_owned()));
    binds.push(Value::Int(since));
    let text = format!(
        "SELECT facility_id, {cases} AS bucket, COUNT(*) FROM access_log WHERE accessed_at >= ? \
         GROUP BY facility_id, bucket ORDER BY facility_id"
    );
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    let mut counts = Vec::new();
    for row in sql.fetch_all(&statement, &[Text, Text, Int]).await? {
        let Ok([facility, bucket, retrievals]) = <[Value; 3]>::try_from(row) else {
            return Err(corrupt("access counts"));
        };
        let bucket = bucket.into_text().as_deref().and_then(AgeBucket::parse).ok_or_else(|| corrupt("age bucket"))?;
        counts.push(AccessCount {
            facility: facility.into_text().unwrap_or_default(),
            bucket,
            retrievals: retrievals.as_int().unwrap_or(0) as u64,
        });
    }
    counts.sort_by(|a, b| (&a.facility, a.bucket).cmp(&(&b.facility, b.bucket)));
    Ok(counts)
}

pub(crate) async fn try_lease(
    sql: &mut dyn Sql,
    job: &str,
    holder: &str,
    now: i64,
    seconds: u32,
) -> Result<bool, StoreError> {
    let statement = sql
        .statement(
            "INSERT INTO job_lease (job, holder, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_lease.expires_at < ? OR job_lease.holder = excluded.holder",
        )
        .text(job)
        .text(holder)
        .int(now + i64::from(seconds))
        .int(now);
    Ok(sql.execute(&statement).await? == 1)
}

pub(crate) async fn release_lease(sql: &mut dyn Sql, job: &str, holder: &str) -> Result<(), StoreError> {
    let statement = sql.statement("DELETE FROM job_lease WHERE job = ? AND holder = ?").text(job).text(holder);
    sql.execute(&statement).await.map(drop)
}
