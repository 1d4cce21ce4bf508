//! The instance index: group-committed writes, queries, retrieval lists and counts.

use std::collections::HashMap;

use async_trait::async_trait;
use renkei_domain::model::{BlobHash, FacilityStats, NewInstance, StoreOutcome, StoredInstance};
use renkei_domain::names::{PersonName, fuzzy_name_key, name_key};
use renkei_domain::query::{Query, QueryMatch, normalize_date, time_lower_bound};
use renkei_domain::{FacilityId, Uid};
use renkei_store::{InstanceStore, StoreError};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, SqliteConnection};

use crate::filter::{Bind, ColumnType, Statement, find_statement, retrieve_statement};
use crate::{SqliteStore, map_error, now_unix};

fn bind_all(statement: &Statement) -> sqlx::query::Query<'_, sqlx::Sqlite, SqliteArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.as_str()));
    for bind in &statement.binds {
        query = match bind {
            Bind::Text(value) => query.bind(value.as_str()),
            Bind::Int(value) => query.bind(*value),
        };
    }
    query
}

fn key<F: Fn(&str) -> Option<String>>(value: &Option<String>, normalise: F) -> Option<String> {
    value.as_deref().map(|v| normalise(v).unwrap_or_default())
}

/// The strict keys of the alphabetic, ideographic and phonetic groups, then their fuzzy keys.
fn name_keys(name: &Option<String>) -> [Option<String>; 6] {
    let Some(name) = name else { return Default::default() };
    let name = PersonName::parse(name);
    let [a, i, p] = name.groups();
    [name_key(a), name_key(i), name_key(p), fuzzy_name_key(a), fuzzy_name_key(i), fuzzy_name_key(p)].map(Some)
}

/// The text-encoding warnings of an instance, as stored: comma-separated codes, or NULL.
fn warnings(item: &NewInstance) -> Option<String> {
    let codes = &item.attributes.text_warnings;
    (!codes.is_empty()).then(|| codes.join(","))
}

/// Primary keys of the patients, studies and series the writer upserted, keyed by every
/// value the upsert bound: an identical upsert would change nothing, so a series of many
/// instances is written once, not once per instance. It is valid while no other connection
/// has written (`PRAGMA data_version` unchanged), and is cleared when a transaction fails.
#[derive(Default)]
struct UpsertCache {
    data_version: i64,
    patients: HashMap<Vec<Option<String>>, i64>,
    studies: HashMap<Vec<Option<String>>, i64>,
    series: HashMap<Vec<Option<String>>, i64>,
}

/// Beyond this many entries the cache starts over, which bounds its memory.
const MAX_CACHED_UPSERTS: usize = 10_000;

impl UpsertCache {
    fn len(&self) -> usize {
        self.patients.len() + self.studies.len() + self.series.len()
    }
}

/// Records one instance inside the caller's transaction.
async fn record_one(
    conn: &mut SqliteConnection,
    item: &NewInstance,
    now: i64,
    cache: &mut UpsertCache,
) -> Result<StoreOutcome, StoreError> {
    let series_pk = upsert_hierarchy(conn, item, cache).await?;
    let a = &item.attributes;
    let facility = item.facility.as_str();
    let inserted = sqlx::query(
        "INSERT INTO instance (facility_id, series_pk, sop_instance_uid, sop_class_uid, instance_number, \
         transfer_syntax, blob, size, received_at, text_warnings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (facility_id, sop_instance_uid) DO NOTHING RETURNING pk",
    )
    .bind(facility)
    .bind(series_pk)
    .bind(item.sop_instance_uid.as_str())
    .bind(item.sop_class_uid.as_str())
    .bind(&a.instance_number)
    .bind(item.transfer_syntax_uid.as_str())
    .bind(&item.blob.0)
    .bind(item.size as i64)
    .bind(now)
    .bind(warnings(item))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_error)?;
    if inserted.is_some() {
        return Ok(StoreOutcome::Created);
    }
    let (instance_pk, blob): (i64, String) =
        sqlx::query("SELECT pk, blob FROM instance WHERE facility_id = ? AND sop_instance_uid = ?")
            .bind(facility)
            .bind(item.sop_instance_uid.as_str())
            .fetch_one(&mut *conn)
            .await
            .map(|row| (row.get(0), row.get(1)))
            .map_err(map_error)?;
    if blob == item.blob.0 {
        return Ok(StoreOutcome::Duplicate);
    }
    sqlx::query(
        "INSERT INTO instance_version (instance_pk, transfer_syntax, blob, size, received_at, superseded_at) \
         SELECT pk, transfer_syntax, blob, size, received_at, ? FROM instance WHERE pk = ?",
    )
    .bind(now)
    .bind(instance_pk)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    sqlx::query(
        "UPDATE instance SET series_pk = ?, sop_class_uid = ?, instance_number = ?, transfer_syntax = ?, \
         blob = ?, size = ?, received_at = ?, text_warnings = ? WHERE pk = ?",
    )
    .bind(series_pk)
    .bind(item.sop_class_uid.as_str())
    .bind(&a.instance_number)
    .bind(item.transfer_syntax_uid.as_str())
    .bind(&item.blob.0)
    .bind(item.size as i64)
    .bind(now)
    .bind(warnings(item))
    .bind(instance_pk)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    Ok(StoreOutcome::NewVersion)
}

const UPSERT_PATIENT: &str = "\
    INSERT INTO patient (facility_id, patient_id, issuer, name, name_a, name_i, name_p, \
      name_a_fuzzy, name_i_fuzzy, name_p_fuzzy, birth_date, birth_date_key, sex) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, patient_id, issuer) DO UPDATE SET \
      name = COALESCE(excluded.name, name), \
      name_a = COALESCE(excluded.name_a, name_a), name_i = COALESCE(excluded.name_i, name_i), \
      name_p = COALESCE(excluded.name_p, name_p), name_a_fuzzy = COALESCE(excluded.name_a_fuzzy, name_a_fuzzy), \
      name_i_fuzzy = COALESCE(excluded.name_i_fuzzy, name_i_fuzzy), \
      name_p_fuzzy = COALESCE(excluded.name_p_fuzzy, name_p_fuzzy), \
      birth_date = COALESCE(excluded.birth_date, birth_date), \
      birth_date_key = COALESCE(excluded.birth_date_key, birth_date_key), sex = COALESCE(excluded.sex, sex) \
    RETURNING pk";

const UPSERT_STUDY: &str = "\
    INSERT INTO study (facility_id, patient_pk, study_uid, study_date, study_date_key, study_time, study_time_key, \
      accession, study_id, description, referring, referring_a, referring_i, referring_p, \
      referring_a_fuzzy, referring_i_fuzzy, referring_p_fuzzy, charset) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, study_uid) DO UPDATE SET patient_pk = excluded.patient_pk, \
      study_date = COALESCE(excluded.study_date, study_date), \
      study_date_key = COALESCE(excluded.study_date_key, study_date_key), \
      study_time = COALESCE(excluded.study_time, study_time), \
      study_time_key = COALESCE(excluded.study_time_key, study_time_key), \
      accession = COALESCE(excluded.accession, accession), study_id = COALESCE(excluded.study_id, study_id), \
      description = COALESCE(excluded.description, description), referring = COALESCE(excluded.referring, referring), \
      referring_a = COALESCE(excluded.referring_a, referring_a), \
      referring_i = COALESCE(excluded.referring_i, referring_i), \
      referring_p = COALESCE(excluded.referring_p, referring_p), \
      referring_a_fuzzy = COALESCE(excluded.referring_a_fuzzy, referring_a_fuzzy), \
      referring_i_fuzzy = COALESCE(excluded.referring_i_fuzzy, referring_i_fuzzy), \
      referring_p_fuzzy = COALESCE(excluded.referring_p_fuzzy, referring_p_fuzzy), \
      charset = COALESCE(excluded.charset, charset) \
    RETURNING pk";

const UPSERT_SERIES: &str = "\
    INSERT INTO series (facility_id, study_pk, series_uid, modality, series_number, description, body_part, \
      series_date, series_date_key, series_time, series_time_key) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, series_uid) DO UPDATE SET study_pk = excluded.study_pk, \
      modality = COALESCE(excluded.modality, modality), series_number = COALESCE(excluded.series_number, series_number), \
      description = COALESCE(excluded.description, description), body_part = COALESCE(excluded.body_part, body_part), \
      series_date = COALESCE(excluded.series_date, series_date), \
      series_date_key = COALESCE(excluded.series_date_key, series_date_key), \
      series_time = COALESCE(excluded.series_time, series_time), \
      series_time_key = COALESCE(excluded.series_time_key, series_time_key) \
    RETURNING pk";

/// Upserts the patient, study and series of an instance; returns the series' key.
async fn upsert_hierarchy(
    conn: &mut SqliteConnection,
    item: &NewInstance,
    cache: &mut UpsertCache,
) -> Result<i64, StoreError> {
    let facility = item.facility.as_str();
    let a = &item.attributes;

    let patient = vec![
        Some(facility.to_owned()),
        a.patient_id.clone(),
        a.issuer_of_patient_id.clone(),
        a.patient_name.clone(),
        a.patient_birth_date.clone(),
        a.patient_sex.clone(),
    ];
    let patient_pk = match cache.patients.get(&patient) {
        Some(pk) => *pk,
        None => {
            let query = sqlx::query(UPSERT_PATIENT)
                .bind(facility)
                .bind(a.patient_id.as_deref().unwrap_or(""))
                .bind(a.issuer_of_patient_id.as_deref().unwrap_or(""))
                .bind(&a.patient_name);
            let pk: i64 = name_keys(&a.patient_name)
                .into_iter()
                .fold(query, |query, key| query.bind(key))
                .bind(&a.patient_birth_date)
                .bind(key(&a.patient_birth_date, normalize_date))
                .bind(&a.patient_sex)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_error)?
                .get(0);
            cache.patients.insert(patient, pk);
            pk
        }
    };

    let study = vec![
        Some(facility.to_owned()),
        Some(patient_pk.to_string()),
        Some(item.study_uid.to_string()),
        a.study_date.clone(),
        a.study_time.clone(),
        a.accession_number.clone(),
        a.study_id.clone(),
        a.study_description.clone(),
        a.referring_physician_name.clone(),
        a.specific_character_set.clone(),
    ];
    let study_pk = match cache.studies.get(&study) {
        Some(pk) => *pk,
        None => {
            let query = sqlx::query(UPSERT_STUDY)
                .bind(facility)
                .bind(patient_pk)
                .bind(item.study_uid.as_str())
                .bind(&a.study_date)
                .bind(key(&a.study_date, normalize_date))
                .bind(&a.study_time)
                .bind(key(&a.study_time, time_lower_bound))
                .bind(&a.accession_number)
                .bind(&a.study_id)
                .bind(&a.study_description)
                .bind(&a.referring_physician_name);
            let pk: i64 = name_keys(&a.referring_physician_name)
                .into_iter()
                .fold(query, |query, key| query.bind(key))
                .bind(&a.specific_character_set)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_error)?
                .get(0);
            cache.studies.insert(study, pk);
            pk
        }
    };

    let series = vec![
        Some(facility.to_owned()),
        Some(study_pk.to_string()),
        Some(item.series_uid.to_string()),
        a.modality.clone(),
        a.series_number.clone(),
        a.series_description.clone(),
        a.body_part_examined.clone(),
        a.series_date.clone(),
        a.series_time.clone(),
    ];
    if let Some(pk) = cache.series.get(&series) {
        return Ok(*pk);
    }
    let series_pk: i64 = sqlx::query(UPSERT_SERIES)
        .bind(facility)
        .bind(study_pk)
        .bind(item.series_uid.as_str())
        .bind(&a.modality)
        .bind(&a.series_number)
        .bind(&a.series_description)
        .bind(&a.body_part_examined)
        .bind(&a.series_date)
        .bind(key(&a.series_date, normalize_date))
        .bind(&a.series_time)
        .bind(key(&a.series_time, time_lower_bound))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?
        .get(0);
    cache.series.insert(series, series_pk);
    Ok(series_pk)
}

fn stored_instance(row: &SqliteRow) -> Result<StoredInstance, StoreError> {
    let uid = |i: usize| -> Result<Uid, StoreError> {
        Uid::new(row.get::<&str, _>(i)).map_err(|_| StoreError::Unavailable("invalid UID in index".into()))
    };
    Ok(StoredInstance {
        study_uid: uid(0)?,
        series_uid: uid(1)?,
        sop_instance_uid: uid(2)?,
        sop_class_uid: uid(3)?,
        transfer_syntax_uid: uid(4)?,
        blob: BlobHash(row.get(5)),
        size: row.get::<i64, _>(6) as u64,
    })
}

async fn record_all(
    conn: &mut SqliteConnection,
    batch: &[NewInstance],
    now: i64,
    upserts: &mut UpsertCache,
) -> Result<Vec<StoreOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for item in batch {
        outcomes.push(record_one(conn, item, now, upserts).await?);
    }
    Ok(outcomes)
}

/// The writing connection and what it remembers of its own upserts.
pub(crate) struct Writer {
    pub(crate) connection: SqliteConnection,
    upserts: UpsertCache,
}

impl Writer {
    pub(crate) fn new(connection: SqliteConnection) -> Self {
        Self { connection, upserts: UpsertCache::default() }
    }
}

impl SqliteStore {
    /// Records a group of instances in one durable transaction, all or nothing.
    async fn record_together(&self, batch: &[NewInstance], now: i64) -> Result<Vec<StoreOutcome>, StoreError> {
        let mut writer = self.writer.lock().await;
        let Writer { connection, upserts } = &mut *writer;
        let mut tx = sqlx::Connection::begin_with(connection, "BEGIN IMMEDIATE").await.map_err(map_error)?;
        let data_version: i64 = sqlx::query("PRAGMA data_version").fetch_one(&mut *tx).await.map_err(map_error)?.get(0);
        if upserts.data_version != data_version || upserts.len() > MAX_CACHED_UPSERTS {
            *upserts = UpsertCache { data_version, ..Default::default() };
        }
        let recorded = match record_all(&mut tx, batch, now, upserts).await {
            Ok(outcomes) => tx.commit().await.map(|()| outcomes).map_err(map_error),
            Err(error) => Err(error),
        };
        if recorded.is_err() {
            // Entries made in the rolled-back transaction point at rows that do not exist.
            *upserts = UpsertCache::default();
        }
        recorded
    }
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn record_instances(
        &self,
        batch: &[NewInstance],
    ) -> Result<Vec<Result<StoreOutcome, StoreError>>, StoreError> {
        let now = now_unix();
        match self.record_together(batch, now).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            // Something in the group failed and the transaction rolled back: record each
            // instance on its own, so that one bad instance fails only itself.
            Err(_) if batch.len() > 1 => {
                let mut results = Vec::with_capacity(batch.len());
                for item in batch {
                    let alone = self.record_together(std::slice::from_ref(item), now).await;
                    results.push(alone.map(|mut outcomes| outcomes.remove(0)));
                }
                Ok(results)
            }
            Err(error) => Ok(vec![Err(error)]),
        }
    }

    async fn find(&self, facility: &FacilityId, query: &Query) -> Result<Vec<QueryMatch>, StoreError> {
        let (statement, columns) = find_statement(facility.as_str(), query);
        let rows = bind_all(&statement).fetch_all(&self.pool).await.map_err(map_error)?;
        let mut matches = Vec::with_capacity(rows.len());
        for row in rows {
            let mut found = QueryMatch::default();
            for (index, (attribute, kind)) in columns.iter().enumerate() {
                let value = match kind {
                    ColumnType::Text => row.try_get::<Option<String>, _>(index).map_err(map_error)?,
                    ColumnType::Count => Some(row.try_get::<i64, _>(index).map_err(map_error)?.to_string()),
                };
                if let Some(value) = value {
                    found.values.insert(*attribute, value);
                }
            }
            found.character_set = row.try_get::<Option<String>, _>(columns.len()).map_err(map_error)?;
            matches.push(found);
        }
        Ok(matches)
    }

    async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, StoreError> {
        let statement = retrieve_statement(facility.as_str(), query);
        let rows = bind_all(&statement).fetch_all(&self.pool).await.map_err(map_error)?;
        rows.iter().map(stored_instance).collect()
    }

    async fn stats(&self) -> Result<Vec<FacilityStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.id, f.name, \
               (SELECT COUNT(*) FROM patient WHERE facility_id = f.id), \
               (SELECT COUNT(*) FROM study WHERE facility_id = f.id), \
               (SELECT COUNT(*) FROM series WHERE facility_id = f.id), \
               (SELECT COUNT(*) FROM instance WHERE facility_id = f.id), \
               (SELECT COALESCE(SUM(size), 0) FROM instance WHERE facility_id = f.id) \
             FROM facility f ORDER BY f.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(rows
            .iter()
            .map(|row| FacilityStats {
                facility: row.get(0),
                name: row.get(1),
                patients: row.get::<i64, _>(2) as u64,
                studies: row.get::<i64, _>(3) as u64,
                series: row.get::<i64, _>(4) as u64,
                instances: row.get::<i64, _>(5) as u64,
                bytes: row.get::<i64, _>(6) as u64,
            })
            .collect())
    }
}
