//! The master patient index: patient records, blocking keys, links and persons.
//!
//! Writes go in chunks of rows per statement (multi-row `VALUES`, `IN` lists, `CASE`), so
//! that a rebuild of a million records is thousands of statements, not millions.

use std::collections::BTreeMap;

use renkei_domain::FacilityId;
use renkei_domain::mpi::{
    Actor, Link, LinkKind, MatchOutcome, MpiStats, NewLink, PatientRecord, PersonId, RecordId, Retirement,
};
use renkei_store::StoreError;

use crate::{ColumnType, Dialect, Sql, Statement, Value, corrupt, placeholders};

/// Rows per multi-row statement: well inside both databases' limits on bound values.
const CHUNK: usize = 256;

const RECORD: &str = "p.pk, p.facility_id, p.patient_id, p.issuer, p.name, p.birth_date, p.sex, p.person_pk";
const RECORD_TYPES: [ColumnType; 8] = {
    use ColumnType::{Int, Text};
    [Int, Text, Text, Text, Text, Text, Text, Int]
};

fn record(row: Vec<Value>) -> Result<PatientRecord, StoreError> {
    let Ok([pk, facility, patient_id, issuer, name, birth_date, sex, person]) = <[Value; 8]>::try_from(row) else {
        return Err(corrupt("patient record"));
    };
    let facility = facility.into_text().ok_or_else(|| corrupt("facility"))?;
    Ok(PatientRecord {
        id: RecordId(pk.as_int().ok_or_else(|| corrupt("patient key"))?),
        facility: FacilityId::new(&facility).map_err(|_| corrupt("facility"))?,
        patient_id: patient_id.into_text().unwrap_or_default(),
        issuer: issuer.into_text().unwrap_or_default(),
        name: name.into_text().unwrap_or_default(),
        birth_date: birth_date.into_text().unwrap_or_default(),
        sex: sex.into_text().unwrap_or_default(),
        person: person.as_int().map(PersonId),
    })
}

/// Records selected by `clause`: a WHERE condition and whatever follows it (order, limit).
async fn records_where(sql: &mut dyn Sql, clause: &str, binds: Vec<Value>) -> Result<Vec<PatientRecord>, StoreError> {
    let text = format!("SELECT {RECORD} FROM patient p WHERE {clause}");
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    sql.fetch_all(&statement, &RECORD_TYPES).await?.into_iter().map(record).collect()
}

fn ints(ids: &[RecordId]) -> Vec<Value> {
    ids.iter().map(|id| Value::Int(id.0)).collect()
}

pub(crate) async fn pending_records(sql: &mut dyn Sql, limit: u32) -> Result<Vec<(PatientRecord, i64)>, StoreError> {
    let text = format!("SELECT {RECORD}, p.mpi_state FROM patient p WHERE p.mpi_state <> 0 ORDER BY p.pk LIMIT ?");
    let statement = sql.statement(&text).int(i64::from(limit));
    with_states(sql, statement).await
}

pub(crate) async fn all_records(sql: &mut dyn Sql) -> Result<Vec<(PatientRecord, i64)>, StoreError> {
    let text = format!("SELECT {RECORD}, p.mpi_state FROM patient p ORDER BY p.pk");
    let statement = sql.statement(&text);
    with_states(sql, statement).await
}

/// Records followed by their change counter.
async fn with_states(sql: &mut dyn Sql, statement: Statement) -> Result<Vec<(PatientRecord, i64)>, StoreError> {
    let mut types = RECORD_TYPES.to_vec();
    types.push(ColumnType::Int);
    let mut pending = Vec::new();
    for mut row in sql.fetch_all(&statement, &types).await? {
        let state = row.pop().and_then(|v| v.as_int()).ok_or_else(|| corrupt("mpi state"))?;
        pending.push((record(row)?, state));
    }
    Ok(pending)
}

pub(crate) async fn records_by_keys(
    sql: &mut dyn Sql,
    keys: &[String],
    largest_block: u32,
) -> Result<Vec<PatientRecord>, StoreError> {
    let (prefixes, exact): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| k.ends_with('*'));
    let mut conditions = Vec::new();
    let mut binds: Vec<Value> = Vec::new();
    if !exact.is_empty() {
        conditions.push(format!("k.key IN ({})", placeholders(exact.len())));
        binds.extend(exact.iter().map(|k| Value::Text((*k).clone())));
    }
    for prefix in prefixes {
        conditions.push("k.key LIKE ? ESCAPE '\\'".to_owned());
        let literal = prefix.trim_end_matches('*').replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        binds.push(Value::Text(format!("{literal}%")));
    }
    if conditions.is_empty() {
        return Ok(Vec::new());
    }
    // Keys are read first and records joined after: `p.pk IN (…) ORDER BY p.pk LIMIT ?` led
    // PostgreSQL to walk every patient in order, probing the keys.
    let text = format!(
        "SELECT {RECORD} FROM (SELECT DISTINCT x.patient_pk FROM \
           (SELECT k.patient_pk, COUNT(*) OVER (PARTITION BY k.key) AS filed FROM mpi_key k WHERE {}) x \
           WHERE x.filed <= ?) c \
         JOIN patient p ON p.pk = c.patient_pk",
        conditions.join(" OR ")
    );
    binds.push(Value::Int(i64::from(largest_block)));
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    sql.fetch_all(&statement, &RECORD_TYPES).await?.into_iter().map(record).collect()
}

pub(crate) async fn records(sql: &mut dyn Sql, ids: &[RecordId]) -> Result<Vec<PatientRecord>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let condition = format!("p.pk IN ({}) ORDER BY p.pk", placeholders(chunk.len()));
        out.extend(records_where(sql, &condition, ints(chunk)).await?);
    }
    Ok(out)
}

pub(crate) async fn records_of_persons(
    sql: &mut dyn Sql,
    persons: &[PersonId],
) -> Result<Vec<PatientRecord>, StoreError> {
    let mut out = Vec::new();
    for chunk in persons.chunks(CHUNK) {
        let clause = format!("p.person_pk IN ({}) ORDER BY p.pk", placeholders(chunk.len()));
        out.extend(records_where(sql, &clause, chunk.iter().map(|p| Value::Int(p.0)).collect()).await?);
    }
    Ok(out)
}

pub(crate) async fn record_of_patient(
    sql: &mut dyn Sql,
    facility: &FacilityId,
    patient_id: &str,
    issuer: &str,
) -> Result<Option<PatientRecord>, StoreError> {
    let binds = [facility.as_str(), patient_id, issuer].map(|v| Value::Text(v.to_owned())).to_vec();
    let found = records_where(sql, "p.facility_id = ? AND p.patient_id = ? AND p.issuer = ?", binds).await?;
    Ok(found.into_iter().next())
}

const LINK: &str = "pk, patient_a, patient_b, kind, weight_milli, created_by, created_reason, created_at, \
    retired_by, retired_reason, retired_at";
const LINK_TYPES: [ColumnType; 11] = {
    use ColumnType::{Int, Text};
    [Int, Int, Int, Text, Int, Text, Text, Int, Text, Text, Int]
};

fn link(row: Vec<Value>) -> Result<Link, StoreError> {
    let Ok([pk, a, b, kind, weight, created_by, created_reason, created_at, retired_by, retired_reason, retired_at]) =
        <[Value; 11]>::try_from(row)
    else {
        return Err(corrupt("link"));
    };
    let int = |v: &Value, what| v.as_int().ok_or_else(|| corrupt(what));
    let kind = kind.into_text().and_then(|k| LinkKind::parse(&k)).ok_or_else(|| corrupt("link kind"))?;
    let retired = retired_at.as_int().map(|at| Retirement {
        by: Actor {
            who: retired_by.into_text().unwrap_or_default(),
            why: retired_reason.into_text().unwrap_or_default(),
        },
        at,
    });
    Ok(Link {
        id: int(&pk, "link key")?,
        a: RecordId(int(&a, "link record")?),
        b: RecordId(int(&b, "link record")?),
        kind,
        weight: weight.as_int().map(|w| w as f64 / 1000.0),
        created_by: Actor {
            who: created_by.into_text().unwrap_or_default(),
            why: created_reason.into_text().unwrap_or_default(),
        },
        created_at: int(&created_at, "link time")?,
        retired,
    })
}

/// Links selected by `clause`: a WHERE condition and whatever follows it.
async fn links_where(sql: &mut dyn Sql, clause: &str, binds: Vec<Value>) -> Result<Vec<Link>, StoreError> {
    let text = format!("SELECT {LINK} FROM mpi_link WHERE {clause}");
    let statement = binds.into_iter().fold(sql.statement(&text), Statement::bind);
    sql.fetch_all(&statement, &LINK_TYPES).await?.into_iter().map(link).collect()
}

/// Links touching any of `records`, current only or all of them, each once, oldest first.
pub(crate) async fn links_touching(
    sql: &mut dyn Sql,
    records: &[RecordId],
    current_only: bool,
) -> Result<Vec<Link>, StoreError> {
    let mut links = BTreeMap::new();
    for chunk in records.chunks(CHUNK) {
        let list = placeholders(chunk.len());
        let current = if current_only { "retired_at IS NULL AND " } else { "" };
        let condition = format!("{current}(patient_a IN ({list}) OR patient_b IN ({list}))");
        let binds = [ints(chunk), ints(chunk)].concat();
        for link in links_where(sql, &condition, binds).await? {
            links.insert(link.id, link);
        }
    }
    Ok(links.into_values().collect())
}

pub(crate) async fn all_current_links(sql: &mut dyn Sql) -> Result<Vec<Link>, StoreError> {
    links_where(sql, "retired_at IS NULL ORDER BY pk", Vec::new()).await
}

pub(crate) async fn candidate_links(sql: &mut dyn Sql, limit: u32) -> Result<Vec<Link>, StoreError> {
    let condition = "retired_at IS NULL AND kind = 'candidate' ORDER BY weight_milli DESC, pk LIMIT ?";
    links_where(sql, condition, vec![Value::Int(i64::from(limit))]).await
}

/// Runs `head` followed by one `group` of placeholders per row, `CHUNK` rows a statement,
/// then `tail`.
async fn insert_rows(
    sql: &mut dyn Sql,
    head: &str,
    group: &str,
    rows: Vec<Vec<Value>>,
    tail: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let text = format!("{head} {} {tail}", vec![group; chunk.len()].join(", "));
        let statement = chunk.iter().flatten().cloned().fold(sql.statement(&text), Statement::bind);
        sql.execute(&statement).await?;
    }
    Ok(())
}

async fn retire(sql: &mut dyn Sql, links: &[i64], by: &Actor, now: i64) -> Result<(), StoreError> {
    for chunk in links.chunks(CHUNK) {
        let text = format!(
            "UPDATE mpi_link SET retired_at = ?, retired_by = ?, retired_reason = ? \
             WHERE retired_at IS NULL AND pk IN ({})",
            placeholders(chunk.len())
        );
        let statement = sql.statement(&text).int(now).text(&by.who).text(&by.why);
        let statement = chunk.iter().map(|pk| Value::Int(*pk)).fold(statement, Statement::bind);
        sql.execute(&statement).await?;
    }
    Ok(())
}

/// Adds links; a pair that already has a current link keeps it.
async fn add_links(sql: &mut dyn Sql, links: &[NewLink], now: i64) -> Result<(), StoreError> {
    let mut links: Vec<&NewLink> = links.iter().collect();
    links.sort_by_key(|l| (l.a, l.b));
    let rows = links
        .iter()
        .map(|l| {
            vec![
                Value::Int(l.a.0),
                Value::Int(l.b.0),
                Value::Text(l.kind.as_str().to_owned()),
                l.weight.map_or(Value::Null, |w| Value::Int((w * 1000.0).round() as i64)),
                Value::Text(l.by.who.clone()),
                Value::Text(l.by.why.clone()),
                Value::Int(now),
            ]
        })
        .collect();
    let head = "INSERT INTO mpi_link (patient_a, patient_b, kind, weight_milli, created_by, created_reason, created_at) \
                VALUES";
    // The weight may be NULL, which PostgreSQL would otherwise take for text in a
    // multi-row VALUES list.
    insert_rows(sql, head, "(?, ?, ?, CAST(? AS BIGINT), ?, ?, ?)", rows, "ON CONFLICT DO NOTHING").await
}

/// Writes one round of matching; run it in a transaction.
pub(crate) async fn apply_matching(tx: &mut dyn Sql, outcome: &MatchOutcome, now: i64) -> Result<(), StoreError> {
    // A rebuild touches most pages of four tables; SQLite's default cache (2 MB) would spill
    // and re-read them over and over. 512 MB for the transaction took a million records
    // from 92 to 73 s; the connection gets its default back afterwards.
    let bulk = tx.dialect() == Dialect::Sqlite && outcome.matched.len() > 10_000;
    let mut deferred = Vec::new();
    if bulk {
        tx.execute(&tx.statement("PRAGMA cache_size = -524288")).await?;
    }
    if outcome.all_keys {
        tx.execute(&tx.statement("DELETE FROM mpi_key")).await?;
    }
    if bulk {
        deferred = drop_deferred_indexes(tx).await?;
    }
    let matcher = Actor::matcher("scores changed");
    retire(tx, &outcome.retire, outcome.retired_by.as_ref().unwrap_or(&matcher), now).await?;
    add_links(tx, &outcome.add, now).await?;

    if !outcome.all_keys {
        let keyed: Vec<RecordId> = outcome.keys.iter().map(|(record, _)| *record).collect();
        for chunk in keyed.chunks(CHUNK) {
            let text = format!("DELETE FROM mpi_key WHERE patient_pk IN ({})", placeholders(chunk.len()));
            tx.execute(&ints(chunk).into_iter().fold(tx.statement(&text), Statement::bind)).await?;
        }
    }
    // In index order: a rebuild's millions of rows then append to the B-trees instead of
    // landing on random pages.
    let mut keys: Vec<(&String, i64)> =
        outcome.keys.iter().flat_map(|(record, keys)| keys.iter().map(|k| (k, record.0))).collect();
    keys.sort();
    let rows = keys.into_iter().map(|(k, record)| vec![Value::Text(k.clone()), Value::Int(record)]).collect();
    insert_rows(tx, "INSERT INTO mpi_key (key, patient_pk) VALUES", "(?, ?)", rows, "ON CONFLICT DO NOTHING").await?;

    // New persons are numbered on from the largest: only the matcher creates them.
    let largest = tx.statement("SELECT COALESCE(MAX(pk), 0) FROM person");
    let mut next = tx
        .fetch_optional(&largest, &[ColumnType::Int])
        .await?
        .and_then(|row| row.into_iter().next())
        .and_then(|v| v.as_int())
        .unwrap_or(0);
    let mut assigned: Vec<(RecordId, i64)> = Vec::new();
    let mut created = Vec::new();
    for assignment in &outcome.persons {
        let person = match assignment.person {
            Some(person) => person.0,
            None => {
                next += 1;
                created.push(vec![Value::Int(next), Value::Int(now)]);
                next
            }
        };
        assigned.extend(assignment.records.iter().map(|r| (*r, person)));
    }
    insert_rows(tx, "INSERT INTO person (pk, created_at) VALUES", "(?, ?)", created, "").await?;
    assigned.sort();
    for chunk in assigned.chunks(CHUNK) {
        let cases = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
        let text =
            format!("UPDATE patient SET person_pk = CASE pk {cases} END WHERE pk IN ({})", placeholders(chunk.len()));
        let binds = chunk.iter().flat_map(|(r, p)| [Value::Int(r.0), Value::Int(*p)]);
        let statement =
            binds.chain(chunk.iter().map(|(r, _)| Value::Int(r.0))).fold(tx.statement(&text), Statement::bind);
        tx.execute(&statement).await?;
    }

    // Matched, unless the record changed again meanwhile. (A row-value `IN (VALUES …)`
    // would be simpler, but SQLite answers it by scanning every patient.)
    let mut matched = outcome.matched.clone();
    matched.sort();
    for chunk in matched.chunks(CHUNK) {
        let cases = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
        let text = format!(
            "UPDATE patient SET mpi_state = 0 WHERE pk IN ({}) AND mpi_state = CASE pk {cases} END",
            placeholders(chunk.len())
        );
        let keys = chunk.iter().map(|(r, _)| Value::Int(r.0));
        let states = chunk.iter().flat_map(|(r, state)| [Value::Int(r.0), Value::Int(*state)]);
        tx.execute(&keys.chain(states).fold(tx.statement(&text), Statement::bind)).await?;
    }
    for index in deferred {
        tx.execute(&tx.statement(&index)).await?;
    }
    if bulk {
        tx.execute(&tx.statement("PRAGMA cache_size = -2000")).await?;
    }
    Ok(())
}

/// Secondary indexes that a bulk write on SQLite drops and builds again once it is done:
/// filled row by row in random order (by patient, by person, by weight) they cost several
/// times what one sorted build does (4M keys: 21 s against 6 s).
const DEFERRED_INDEXES: [&str; 5] =
    ["mpi_key_by_patient", "mpi_link_by_b", "mpi_link_current_by_b", "mpi_link_review", "patient_by_person"];

/// Drops the [`DEFERRED_INDEXES`] and returns the statements that create them again, as the
/// schema has them (so the migrations stay their one definition).
async fn drop_deferred_indexes(tx: &mut dyn Sql) -> Result<Vec<String>, StoreError> {
    let text = format!(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND name IN ({})",
        placeholders(DEFERRED_INDEXES.len())
    );
    let statement = DEFERRED_INDEXES.iter().fold(tx.statement(&text), |s, name| s.text(name));
    let mut creates = Vec::new();
    for row in tx.fetch_all(&statement, &[ColumnType::Text, ColumnType::Text]).await? {
        let [name, sql] = <[Value; 2]>::try_from(row).map_err(|_| corrupt("index"))?;
        let (name, sql) = (name.into_text().ok_or_else(|| corrupt("index"))?, sql.into_text().unwrap_or_default());
        // Names come from the fixed list above, never from a request.
        tx.execute(&tx.statement(&format!("DROP INDEX {name}"))).await?;
        creates.push(sql);
    }
    Ok(creates)
}

/// A person's decision; run it in a transaction.
pub(crate) async fn decide(
    tx: &mut dyn Sql,
    add: Option<&NewLink>,
    retired: &[i64],
    by: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let mut touched: Vec<RecordId> = add.map(|l| vec![l.a, l.b]).unwrap_or_default();
    for chunk in retired.chunks(CHUNK) {
        let condition = format!("pk IN ({})", placeholders(chunk.len()));
        let links = links_where(tx, &condition, chunk.iter().map(|pk| Value::Int(*pk)).collect()).await?;
        touched.extend(links.iter().flat_map(|l| [l.a, l.b]));
    }
    retire(tx, retired, by, now).await?;
    if let Some(link) = add {
        add_links(tx, std::slice::from_ref(link), now).await?;
    }
    touched.sort();
    touched.dedup();
    for chunk in touched.chunks(CHUNK) {
        let text = format!("UPDATE patient SET mpi_state = mpi_state + 1 WHERE pk IN ({})", placeholders(chunk.len()));
        tx.execute(&ints(chunk).into_iter().fold(tx.statement(&text), Statement::bind)).await?;
    }
    Ok(())
}

pub(crate) async fn model(sql: &mut dyn Sql) -> Result<Option<String>, StoreError> {
    let statement = sql.statement("SELECT model FROM mpi_model ORDER BY pk DESC LIMIT 1");
    Ok(sql.fetch_optional(&statement, &[ColumnType::Text]).await?.and_then(|row| row.into_iter().next()?.into_text()))
}

pub(crate) async fn save_model(sql: &mut dyn Sql, model: &str, now: i64) -> Result<(), StoreError> {
    let statement = sql.statement("INSERT INTO mpi_model (model, created_at) VALUES (?, ?)").text(model).int(now);
    sql.execute(&statement).await.map(drop)
}

pub(crate) async fn mpi_stats(sql: &mut dyn Sql) -> Result<MpiStats, StoreError> {
    use ColumnType::Int;
    let statement = sql.statement(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN mpi_state <> 0 THEN 1 ELSE 0 END), 0), COUNT(DISTINCT person_pk), \
           (SELECT COUNT(*) FROM (SELECT person_pk FROM patient WHERE person_pk IS NOT NULL \
              GROUP BY person_pk HAVING COUNT(DISTINCT facility_id) > 1) AS x), \
           (SELECT COUNT(*) FROM mpi_link WHERE retired_at IS NULL AND kind = 'candidate') \
         FROM patient",
    );
    let row = sql.fetch_optional(&statement, &[Int, Int, Int, Int, Int]).await?.ok_or_else(|| corrupt("counts"))?;
    let count = |i: usize| row.get(i).and_then(Value::as_int).unwrap_or(0) as u64;
    Ok(MpiStats {
        records: count(0),
        pending: count(1),
        persons: count(2),
        persons_across_facilities: count(3),
        candidates: count(4),
    })
}
