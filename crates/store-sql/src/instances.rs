//! The instance index: group-committed writes, queries, retrieval lists and counts.

use std::collections::HashMap;

use renkei_domain::model::{BlobHash, FacilityStats, NewInstance, StoreOutcome, StoredInstance};
use renkei_domain::names::{PersonName, fuzzy_name_key, name_key};
use renkei_domain::query::{Attribute, Query, QueryMatch, normalize_date, time_lower_bound};
use renkei_domain::sharing::{Grant, LocalPatient, Shared};
use renkei_domain::{FacilityId, Uid};
use renkei_store::StoreError;

use crate::query::{SHARED_COLUMNS, Scope, find_statement, retrieve_statement};
use crate::{ColumnType, Sql, Statement, Value, corrupt};

fn key<F: Fn(&str) -> Option<String>>(value: &Option<String>, normalise: F) -> Value {
    Value::text(value.as_deref().map(|v| normalise(v).unwrap_or_default()).as_deref())
}

/// The strict keys of the alphabetic, ideographic and phonetic groups, then their fuzzy keys.
fn name_keys(name: &Option<String>) -> [Value; 6] {
    let Some(name) = name else { return [const { Value::Null }; 6] };
    let name = PersonName::parse(name);
    let [a, i, p] = name.groups();
    [name_key(a), name_key(i), name_key(p), fuzzy_name_key(a), fuzzy_name_key(i), fuzzy_name_key(p)].map(Value::Text)
}

/// The text-encoding warnings of an instance, as stored: comma-separated codes, or NULL.
fn warnings(item: &NewInstance) -> Value {
    let codes = &item.attributes.text_warnings;
    if codes.is_empty() { Value::Null } else { Value::Text(codes.join(",")) }
}

/// Primary keys of the patients, studies and series a writer upserted, keyed by every value
/// the upsert bound: an identical upsert would change nothing, so a series of many instances
/// is written once, not once per instance. The backend decides how long it stays valid (at
/// most while no other writer has written), and clears it when a transaction fails.
#[derive(Default)]
pub struct UpsertCache {
    keys: HashMap<Vec<Value>, i64>,
}

/// Beyond this many entries the cache starts over, which bounds its memory.
const MAX_CACHED_UPSERTS: usize = 10_000;

const INSERT_INSTANCE: &str = "\
    INSERT INTO instance (facility_id, series_pk, sop_instance_uid, sop_class_uid, instance_number, \
      transfer_syntax, blob, size, received_at, text_warnings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, sop_instance_uid) DO NOTHING RETURNING pk";

const KEEP_VERSION: &str = "\
    INSERT INTO instance_version (instance_pk, transfer_syntax, blob, size, received_at, superseded_at) \
    SELECT pk, transfer_syntax, blob, size, received_at, ? FROM instance WHERE pk = ?";

const REPLACE_INSTANCE: &str = "\
    UPDATE instance SET series_pk = ?, sop_class_uid = ?, instance_number = ?, transfer_syntax = ?, \
      blob = ?, size = ?, received_at = ?, text_warnings = ? WHERE pk = ?";

/// Upserts keep the existing value of an attribute the new instance lacks. A patient whose
/// name, birth date or sex change is pending for the master patient index again.
const UPSERT_PATIENT: &str = "\
    INSERT INTO patient (facility_id, patient_id, issuer, name, name_a, name_i, name_p, \
      name_a_fuzzy, name_i_fuzzy, name_p_fuzzy, birth_date, birth_date_key, sex) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, patient_id, issuer) DO UPDATE SET \
      name = COALESCE(excluded.name, patient.name), \
      name_a = COALESCE(excluded.name_a, patient.name_a), name_i = COALESCE(excluded.name_i, patient.name_i), \
      name_p = COALESCE(excluded.name_p, patient.name_p), \
      name_a_fuzzy = COALESCE(excluded.name_a_fuzzy, patient.name_a_fuzzy), \
      name_i_fuzzy = COALESCE(excluded.name_i_fuzzy, patient.name_i_fuzzy), \
      name_p_fuzzy = COALESCE(excluded.name_p_fuzzy, patient.name_p_fuzzy), \
      birth_date = COALESCE(excluded.birth_date, patient.birth_date), \
      birth_date_key = COALESCE(excluded.birth_date_key, patient.birth_date_key), \
      sex = COALESCE(excluded.sex, patient.sex), \
      mpi_state = CASE WHEN patient.name IS NOT DISTINCT FROM COALESCE(excluded.name, patient.name) \
        AND patient.birth_date IS NOT DISTINCT FROM COALESCE(excluded.birth_date, patient.birth_date) \
        AND patient.sex IS NOT DISTINCT FROM COALESCE(excluded.sex, patient.sex) \
        THEN patient.mpi_state ELSE patient.mpi_state + 1 END \
    RETURNING pk";

const UPSERT_STUDY: &str = "\
    INSERT INTO study (facility_id, patient_pk, study_uid, study_date, study_date_key, study_time, study_time_key, \
      accession, study_id, description, referring, referring_a, referring_i, referring_p, \
      referring_a_fuzzy, referring_i_fuzzy, referring_p_fuzzy, charset) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, study_uid) DO UPDATE SET patient_pk = excluded.patient_pk, \
      study_date = COALESCE(excluded.study_date, study.study_date), \
      study_date_key = COALESCE(excluded.study_date_key, study.study_date_key), \
      study_time = COALESCE(excluded.study_time, study.study_time), \
      study_time_key = COALESCE(excluded.study_time_key, study.study_time_key), \
      accession = COALESCE(excluded.accession, study.accession), \
      study_id = COALESCE(excluded.study_id, study.study_id), \
      description = COALESCE(excluded.description, study.description), \
      referring = COALESCE(excluded.referring, study.referring), \
      referring_a = COALESCE(excluded.referring_a, study.referring_a), \
      referring_i = COALESCE(excluded.referring_i, study.referring_i), \
      referring_p = COALESCE(excluded.referring_p, study.referring_p), \
      referring_a_fuzzy = COALESCE(excluded.referring_a_fuzzy, study.referring_a_fuzzy), \
      referring_i_fuzzy = COALESCE(excluded.referring_i_fuzzy, study.referring_i_fuzzy), \
      referring_p_fuzzy = COALESCE(excluded.referring_p_fuzzy, study.referring_p_fuzzy), \
      charset = COALESCE(excluded.charset, study.charset) \
    RETURNING pk";

const UPSERT_SERIES: &str = "\
    INSERT INTO series (facility_id, study_pk, series_uid, modality, series_number, description, body_part, \
      series_date, series_date_key, series_time, series_time_key) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (facility_id, series_uid) DO UPDATE SET study_pk = excluded.study_pk, \
      modality = COALESCE(excluded.modality, series.modality), \
      series_number = COALESCE(excluded.series_number, series.series_number), \
      description = COALESCE(excluded.description, series.description), \
      body_part = COALESCE(excluded.body_part, series.body_part), \
      series_date = COALESCE(excluded.series_date, series.series_date), \
      series_date_key = COALESCE(excluded.series_date_key, series.series_date_key), \
      series_time = COALESCE(excluded.series_time, series.series_time), \
      series_time_key = COALESCE(excluded.series_time_key, series.series_time_key) \
    RETURNING pk";

/// Runs a statement that returns one integer (a `RETURNING pk`), if it returns a row.
async fn fetch_int(sql: &mut dyn Sql, statement: &crate::Statement) -> Result<Option<i64>, StoreError> {
    let row = sql.fetch_optional(statement, &[ColumnType::Int]).await?;
    match row {
        None => Ok(None),
        Some(row) => row[0].as_int().map(Some).ok_or_else(|| corrupt("key")),
    }
}

/// Records a batch inside the caller's transaction, in order. `upserts` must be empty or
/// still valid for this transaction; it is emptied when it grows too large.
pub async fn record_all(
    sql: &mut dyn Sql,
    batch: &[NewInstance],
    now: i64,
    upserts: &mut UpsertCache,
) -> Result<Vec<StoreOutcome>, StoreError> {
    if upserts.keys.len() > MAX_CACHED_UPSERTS {
        *upserts = UpsertCache::default();
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for item in batch {
        outcomes.push(record_one(sql, item, now, upserts).await?);
    }
    Ok(outcomes)
}

async fn record_one(
    sql: &mut dyn Sql,
    item: &NewInstance,
    now: i64,
    cache: &mut UpsertCache,
) -> Result<StoreOutcome, StoreError> {
    let series_pk = upsert_hierarchy(sql, item, cache).await?;
    let a = &item.attributes;
    let facility = item.facility.as_str();
    let insert = sql
        .statement(INSERT_INSTANCE)
        .text(facility)
        .int(series_pk)
        .text(item.sop_instance_uid.as_str())
        .text(item.sop_class_uid.as_str())
        .optional(&a.instance_number)
        .text(item.transfer_syntax_uid.as_str())
        .text(&item.blob.0)
        .int(item.size as i64)
        .int(now)
        .bind(warnings(item));
    if let Some(instance_pk) = fetch_int(sql, &insert).await? {
        queue_dose(sql, item, instance_pk, now).await?;
        return Ok(StoreOutcome::Created);
    }
    let existing = sql
        .statement("SELECT pk, blob FROM instance WHERE facility_id = ? AND sop_instance_uid = ?")
        .text(facility)
        .text(item.sop_instance_uid.as_str());
    let row = sql.fetch_optional(&existing, &[ColumnType::Int, ColumnType::Text]).await?;
    let Some([pk, blob]) = row.and_then(|row| <[Value; 2]>::try_from(row).ok()) else {
        return Err(corrupt("instance"));
    };
    let instance_pk = pk.as_int().ok_or_else(|| corrupt("instance key"))?;
    if blob.into_text().as_deref() == Some(item.blob.0.as_str()) {
        return Ok(StoreOutcome::Duplicate);
    }
    sql.execute(&sql.statement(KEEP_VERSION).int(now).int(instance_pk)).await?;
    let replace = sql
        .statement(REPLACE_INSTANCE)
        .int(series_pk)
        .text(item.sop_class_uid.as_str())
        .optional(&a.instance_number)
        .text(item.transfer_syntax_uid.as_str())
        .text(&item.blob.0)
        .int(item.size as i64)
        .int(now)
        .bind(warnings(item))
        .int(instance_pk);
    sql.execute(&replace).await?;
    queue_dose(sql, item, instance_pk, now).await?;
    Ok(StoreOutcome::NewVersion)
}

/// Queues a stored object that may carry dose for the extractor, in the same transaction.
async fn queue_dose(sql: &mut dyn Sql, item: &NewInstance, instance_pk: i64, now: i64) -> Result<(), StoreError> {
    if item.dose_source {
        let queue = "INSERT INTO dose_pending (instance_pk, queued_at) VALUES (?, ?) \
            ON CONFLICT (instance_pk) DO UPDATE SET queued_at = excluded.queued_at";
        sql.execute(&sql.statement(queue).int(instance_pk).int(now)).await?;
    }
    Ok(())
}

/// Runs an upsert that returns its row's key, unless the cache says the same upsert with
/// the same values already ran. (The three upserts bind different numbers of values, so
/// their keys never collide.)
async fn upsert(sql: &mut dyn Sql, cache: &mut UpsertCache, statement: Statement) -> Result<i64, StoreError> {
    if let Some(pk) = cache.keys.get(&statement.binds) {
        return Ok(*pk);
    }
    let pk = fetch_int(sql, &statement).await?.ok_or_else(|| corrupt("key"))?;
    cache.keys.insert(statement.binds, pk);
    Ok(pk)
}

/// Upserts the patient, study and series of an instance; returns the series' key.
async fn upsert_hierarchy(sql: &mut dyn Sql, item: &NewInstance, cache: &mut UpsertCache) -> Result<i64, StoreError> {
    let facility = item.facility.as_str();
    let a = &item.attributes;

    let patient = sql
        .statement(UPSERT_PATIENT)
        .text(facility)
        .text(a.patient_id.as_deref().unwrap_or(""))
        .text(a.issuer_of_patient_id.as_deref().unwrap_or(""))
        .optional(&a.patient_name);
    let patient = name_keys(&a.patient_name)
        .into_iter()
        .fold(patient, Statement::bind)
        .optional(&a.patient_birth_date)
        .bind(key(&a.patient_birth_date, normalize_date))
        .optional(&a.patient_sex);
    let patient_pk = upsert(sql, cache, patient).await?;

    let study = sql
        .statement(UPSERT_STUDY)
        .text(facility)
        .int(patient_pk)
        .text(item.study_uid.as_str())
        .optional(&a.study_date)
        .bind(key(&a.study_date, normalize_date))
        .optional(&a.study_time)
        .bind(key(&a.study_time, time_lower_bound))
        .optional(&a.accession_number)
        .optional(&a.study_id)
        .optional(&a.study_description)
        .optional(&a.referring_physician_name);
    let study = name_keys(&a.referring_physician_name)
        .into_iter()
        .fold(study, Statement::bind)
        .optional(&a.specific_character_set);
    let study_pk = upsert(sql, cache, study).await?;

    let series = sql
        .statement(UPSERT_SERIES)
        .text(facility)
        .int(study_pk)
        .text(item.series_uid.as_str())
        .optional(&a.modality)
        .optional(&a.series_number)
        .optional(&a.series_description)
        .optional(&a.body_part_examined)
        .optional(&a.series_date)
        .bind(key(&a.series_date, normalize_date))
        .optional(&a.series_time)
        .bind(key(&a.series_time, time_lower_bound));
    upsert(sql, cache, series).await
}

/// Entities of one facility at the query's level that match all its keys.
pub(crate) async fn find(sql: &mut dyn Sql, scope: Scope<'_>, query: &Query) -> Result<Vec<QueryMatch>, StoreError> {
    let (statement, columns) = find_statement(sql.dialect(), scope, query);
    let mut types: Vec<ColumnType> = columns.iter().map(|(_, kind)| *kind).collect();
    types.push(ColumnType::Text);
    let shared = matches!(scope, Scope::SharedWith { .. });
    if shared {
        types.extend(SHARED_COLUMNS);
    }
    let rows = sql.fetch_all(&statement, &types).await?;
    let mut matches = Vec::with_capacity(rows.len());
    for mut row in rows {
        let origin = if shared { Some(split_shared(&mut row)?) } else { None };
        let character_set = row.pop().and_then(Value::into_text);
        let mut found = QueryMatch { character_set, ..Default::default() };
        for ((attribute, _), value) in columns.iter().zip(row) {
            if let Some(value) = value.into_text() {
                found.values.insert(*attribute, value);
            }
        }
        found.shared = origin.map(|origin| origin.seen_as(local_patient(&found)));
        matches.push(found);
    }
    Ok(matches)
}

/// The current version of every instance under the entities the query matches.
pub(crate) async fn retrieve(
    sql: &mut dyn Sql,
    scope: Scope<'_>,
    query: &Query,
) -> Result<Vec<StoredInstance>, StoreError> {
    use ColumnType::{Int, Text};
    let statement = retrieve_statement(sql.dialect(), scope, query);
    let mut types = vec![Text, Text, Text, Text, Text, Text, Int, Text];
    if matches!(scope, Scope::Own(_)) {
        let rows = sql.fetch_all(&statement, &types).await?;
        return rows.into_iter().map(stored_instance).collect();
    }
    types.extend([Text; 5]);
    types.extend(SHARED_COLUMNS);
    let mut instances = Vec::new();
    for mut row in sql.fetch_all(&statement, &types).await? {
        let origin = split_shared(&mut row)?;
        let local: Vec<String> = row.split_off(8).into_iter().map(|v| v.into_text().unwrap_or_default()).collect();
        let Ok([patient_id, issuer, name, birth_date, sex]) = <[String; 5]>::try_from(local) else {
            return Err(corrupt("local patient"));
        };
        let mut instance = stored_instance(row)?;
        instance.shared = Some(origin.seen_as(LocalPatient { patient_id, issuer, name, birth_date, sex }));
        instances.push(instance);
    }
    Ok(instances)
}

/// Where a shared row comes from and why it may be seen, before knowing whose patient it is
/// shown under.
struct Origin {
    facility: FacilityId,
    patient_id: String,
    issuer: String,
    grant: Grant,
}

impl Origin {
    fn seen_as(self, local: LocalPatient) -> Shared {
        Shared {
            origin: self.facility,
            origin_patient_id: self.patient_id,
            origin_issuer: self.issuer,
            local,
            grant: self.grant,
        }
    }
}

/// Takes the [`SHARED_COLUMNS`] off the end of a row.
fn split_shared(row: &mut Vec<Value>) -> Result<Origin, StoreError> {
    let at = row.len().checked_sub(SHARED_COLUMNS.len()).ok_or_else(|| corrupt("shared row"))?;
    let Ok([facility, patient_id, issuer, publication, break_glass]) = <[Value; 5]>::try_from(row.split_off(at)) else {
        return Err(corrupt("shared row"));
    };
    let grant =
        Grant::of(publication.as_int(), break_glass.as_int()).ok_or_else(|| corrupt("shared row without a grant"))?;
    let facility = crate::sharing::facility_id(facility)?;
    Ok(Origin {
        facility,
        patient_id: patient_id.into_text().unwrap_or_default(),
        issuer: issuer.into_text().unwrap_or_default(),
        grant,
    })
}

fn local_patient(found: &QueryMatch) -> LocalPatient {
    let value = |attribute| found.values.get(&attribute).cloned().unwrap_or_default();
    LocalPatient {
        patient_id: value(Attribute::PatientId),
        issuer: value(Attribute::IssuerOfPatientId),
        name: value(Attribute::PatientName),
        birth_date: value(Attribute::PatientBirthDate),
        sex: value(Attribute::PatientSex),
    }
}

pub(crate) fn stored_instance(row: Vec<Value>) -> Result<StoredInstance, StoreError> {
    let Ok([study, series, sop, class, syntax, blob, size, study_date]) = <[Value; 8]>::try_from(row) else {
        return Err(corrupt("instance row"));
    };
    let uid = |value: Value| value.into_text().and_then(|v| Uid::new(&v).ok()).ok_or_else(|| corrupt("UID"));
    Ok(StoredInstance {
        study_uid: uid(study)?,
        series_uid: uid(series)?,
        sop_instance_uid: uid(sop)?,
        sop_class_uid: uid(class)?,
        transfer_syntax_uid: uid(syntax)?,
        blob: BlobHash(blob.into_text().ok_or_else(|| corrupt("blob"))?),
        size: size.as_int().ok_or_else(|| corrupt("size"))? as u64,
        study_date: study_date.into_text().filter(|date| !date.is_empty()),
        shared: None,
    })
}

/// Counts per facility, for every facility.
pub(crate) async fn stats(sql: &mut dyn Sql) -> Result<Vec<FacilityStats>, StoreError> {
    use ColumnType::{Int, Text};
    let statement = sql.statement(
        "SELECT f.id, f.name, \
           (SELECT COUNT(*) FROM patient WHERE facility_id = f.id), \
           (SELECT COUNT(*) FROM study WHERE facility_id = f.id), \
           (SELECT COUNT(*) FROM series WHERE facility_id = f.id), \
           (SELECT COUNT(*) FROM instance WHERE facility_id = f.id), \
           (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM instance WHERE facility_id = f.id) \
         FROM facility f ORDER BY f.id",
    );
    let rows = sql.fetch_all(&statement, &[Text, Text, Int, Int, Int, Int, Int]).await?;
    let mut stats = Vec::with_capacity(rows.len());
    for row in rows {
        let Ok([facility, name, patients, studies, series, instances, bytes]) = <[Value; 7]>::try_from(row) else {
            return Err(corrupt("facility counts"));
        };
        let count = |value: Value| value.as_int().unwrap_or(0) as u64;
        stats.push(FacilityStats {
            facility: facility.into_text().unwrap_or_default(),
            name: name.into_text().unwrap_or_default(),
            patients: count(patients),
            studies: count(studies),
            series: count(series),
            instances: count(instances),
            bytes: count(bytes),
        });
    }
    Ok(stats)
}
