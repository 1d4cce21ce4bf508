//! Sharing between facilities: publications, break-glass accesses and the access audit.
//! What they let a facility see is read by `query` (`Scope::SharedWith`).

use renkei_domain::FacilityId;
use renkei_domain::mpi::{Actor, RecordId};
use renkei_domain::sharing::{
    AccessKind, Audience, BreakGlass, Consent, Grant, NewBreakGlass, NewPublication, PatientRef, Publication,
    Published, Review, Revocation, SharedAccess,
};
use renkei_store::StoreError;

use crate::query::PUBLISHED_TO;
use crate::{ColumnType, Sql, Statement, Value, corrupt, placeholders};

/// Rows per multi-row insert.
const CHUNK: usize = 256;

async fn patient_pk(sql: &mut dyn Sql, patient: &PatientRef) -> Result<i64, StoreError> {
    let statement = sql
        .statement("SELECT pk FROM patient WHERE facility_id = ? AND patient_id = ? AND issuer = ?")
        .text(patient.facility.as_str())
        .text(&patient.patient_id)
        .text(&patient.issuer);
    first_int(sql, &statement).await?.ok_or_else(|| StoreError::NotFound("patient".into()))
}

async fn first_int(sql: &mut dyn Sql, statement: &Statement) -> Result<Option<i64>, StoreError> {
    let row = sql.fetch_optional(statement, &[ColumnType::Int]).await?;
    Ok(row.and_then(|row| row.first().and_then(Value::as_int)))
}

pub(crate) async fn publish(
    tx: &mut dyn Sql,
    publication: &NewPublication,
    now: i64,
) -> Result<Publication, StoreError> {
    let patient = patient_pk(tx, &publication.patient).await?;
    let study = match &publication.published {
        Published::Patient => None,
        Published::Study { study_uid } => {
            let statement = tx
                .statement("SELECT pk FROM study WHERE facility_id = ? AND study_uid = ? AND patient_pk = ?")
                .text(publication.patient.facility.as_str())
                .text(study_uid)
                .int(patient);
            Some(first_int(tx, &statement).await?.ok_or_else(|| StoreError::NotFound("study".into()))?)
        }
    };
    let NewPublication { audience, starts_at, ends_at, consent, created_by, .. } = publication;
    let statement = tx
        .statement(
            "INSERT INTO publication (facility_id, patient_pk, study_pk, to_group, starts_at, ends_at, consent_by, \
             consent_at, consent_scope, created_by, created_at) \
             VALUES (?, ?, CAST(? AS BIGINT), ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
        )
        .text(publication.patient.facility.as_str())
        .int(patient)
        .bind(study.map_or(Value::Null, Value::Int))
        .int(i64::from(*audience == Audience::Group))
        .int(*starts_at)
        .int(*ends_at)
        .text(&consent.given_by)
        .int(consent.given_at)
        .text(&consent.scope)
        .text(created_by)
        .int(now);
    let id = first_int(tx, &statement).await?.ok_or_else(|| corrupt("publication key"))?;
    if let Audience::Facilities(targets) = audience {
        for chunk in targets.chunks(CHUNK) {
            let text = format!(
                "INSERT INTO publication_target (publication_pk, facility_id) VALUES {}",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let statement = chunk.iter().fold(tx.statement(&text), |s, f| s.int(id).text(f.as_str()));
            tx.execute(&statement).await?;
        }
    }
    Ok(Publication { id, publication: publication.clone(), created_at: now, revoked: None })
}

pub(crate) async fn revoke(
    sql: &mut dyn Sql,
    id: i64,
    facility: Option<&FacilityId>,
    by: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let mut text = "UPDATE publication SET revoked_by = ?, revoked_reason = ?, revoked_at = ? \
                    WHERE pk = ? AND revoked_at IS NULL"
        .to_owned();
    if facility.is_some() {
        text.push_str(" AND facility_id = ?");
    }
    let mut statement = sql.statement(&text).text(&by.who).text(&by.why).int(now).int(id);
    if let Some(facility) = facility {
        statement = statement.text(facility.as_str());
    }
    match sql.execute(&statement).await? {
        0 => Err(StoreError::NotFound("current publication".into())),
        _ => Ok(()),
    }
}

pub(crate) async fn publications(
    sql: &mut dyn Sql,
    facility: Option<&FacilityId>,
    limit: u32,
) -> Result<Vec<Publication>, StoreError> {
    use ColumnType::{Int, Text};
    let mut text = "SELECT pub.pk, pub.facility_id, pa.patient_id, pa.issuer, st.study_uid, pub.to_group, \
                    pub.starts_at, pub.ends_at, pub.consent_by, pub.consent_at, pub.consent_scope, pub.created_by, \
                    pub.created_at, pub.revoked_by, pub.revoked_reason, pub.revoked_at \
                    FROM publication pub JOIN patient pa ON pa.pk = pub.patient_pk \
                    LEFT JOIN study st ON st.pk = pub.study_pk"
        .to_owned();
    if facility.is_some() {
        text.push_str(" WHERE pub.facility_id = ?");
    }
    text.push_str(" ORDER BY pub.pk DESC LIMIT ?");
    let mut statement = sql.statement(&text);
    if let Some(facility) = facility {
        statement = statement.text(facility.as_str());
    }
    let statement = statement.int(i64::from(limit));
    let types = [Int, Text, Text, Text, Text, Int, Int, Int, Text, Int, Text, Text, Int, Text, Text, Int];
    let mut publications = Vec::new();
    for row in sql.fetch_all(&statement, &types).await? {
        let Ok(
            [
                pk,
                facility,
                patient_id,
                issuer,
                study_uid,
                to_group,
                starts_at,
                ends_at,
                consent_by,
                consent_at,
                consent_scope,
                created_by,
                created_at,
                revoked_by,
                revoked_reason,
                revoked_at,
            ],
        ) = <[Value; 16]>::try_from(row)
        else {
            return Err(corrupt("publication row"));
        };
        let int = |v: Value| v.as_int().ok_or_else(|| corrupt("publication"));
        let text = |v: Value| v.into_text().unwrap_or_default();
        let audience = if int(to_group)? == 1 { Audience::Group } else { Audience::Facilities(Vec::new()) };
        publications.push(Publication {
            id: int(pk)?,
            publication: NewPublication {
                patient: PatientRef {
                    facility: facility_id(facility)?,
                    patient_id: text(patient_id),
                    issuer: text(issuer),
                },
                published: match study_uid.into_text() {
                    Some(study_uid) => Published::Study { study_uid },
                    None => Published::Patient,
                },
                audience,
                starts_at: int(starts_at)?,
                ends_at: int(ends_at)?,
                consent: Consent { given_by: text(consent_by), given_at: int(consent_at)?, scope: text(consent_scope) },
                created_by: text(created_by),
            },
            created_at: int(created_at)?,
            revoked: revoked_at
                .as_int()
                .map(|at| Revocation { by: Actor { who: text(revoked_by), why: text(revoked_reason) }, at }),
        });
    }
    add_targets(sql, &mut publications).await?;
    Ok(publications)
}

/// Fills in the named facilities of publications not for the whole group.
async fn add_targets(sql: &mut dyn Sql, publications: &mut [Publication]) -> Result<(), StoreError> {
    let named: Vec<i64> =
        publications.iter().filter(|p| p.publication.audience != Audience::Group).map(|p| p.id).collect();
    for chunk in named.chunks(CHUNK) {
        let text = format!(
            "SELECT publication_pk, facility_id FROM publication_target WHERE publication_pk IN ({}) \
             ORDER BY facility_id",
            placeholders(chunk.len())
        );
        let statement = chunk.iter().fold(sql.statement(&text), |s, id| s.int(*id));
        for row in sql.fetch_all(&statement, &[ColumnType::Int, ColumnType::Text]).await? {
            let [id, facility] = <[Value; 2]>::try_from(row).map_err(|_| corrupt("publication target"))?;
            let facility = facility_id(facility)?;
            if let Some(Audience::Facilities(targets)) =
                publications.iter_mut().find(|p| Some(p.id) == id.as_int()).map(|p| &mut p.publication.audience)
            {
                targets.push(facility);
            }
        }
    }
    Ok(())
}

pub(crate) fn facility_id(value: Value) -> Result<FacilityId, StoreError> {
    value.into_text().and_then(|f| FacilityId::new(&f).ok()).ok_or_else(|| corrupt("facility"))
}

pub(crate) async fn open_break_glass(tx: &mut dyn Sql, access: &NewBreakGlass) -> Result<BreakGlass, StoreError> {
    let patient = patient_pk(tx, &access.patient).await?;
    let statement = tx
        .statement(
            "INSERT INTO break_glass (facility_id, patient_pk, opened_by, reason, starts_at, ends_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING pk",
        )
        .text(access.patient.facility.as_str())
        .int(patient)
        .text(&access.opened_by.who)
        .text(&access.opened_by.why)
        .int(access.starts_at)
        .int(access.ends_at);
    let id = first_int(tx, &statement).await?.ok_or_else(|| corrupt("break-glass key"))?;
    Ok(BreakGlass { id, access: access.clone(), reviewed: None, closed: None })
}

pub(crate) async fn break_glasses(
    sql: &mut dyn Sql,
    facility: Option<&FacilityId>,
    unreviewed: bool,
    limit: u32,
) -> Result<Vec<BreakGlass>, StoreError> {
    use ColumnType::{Int, Text};
    let mut conditions = Vec::new();
    if facility.is_some() {
        conditions.push("b.facility_id = ?");
    }
    if unreviewed {
        conditions.push("b.reviewed_at IS NULL");
    }
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let text = format!(
        "SELECT b.pk, b.facility_id, pa.patient_id, pa.issuer, b.opened_by, b.reason, b.starts_at, b.ends_at, \
         b.reviewed_by, b.reviewed_note, b.reviewed_at, b.closed_by, b.closed_reason, b.closed_at \
         FROM break_glass b JOIN patient pa ON pa.pk = b.patient_pk\
         {filter} ORDER BY b.pk DESC LIMIT ?"
    );
    let mut statement = sql.statement(&text);
    if let Some(facility) = facility {
        statement = statement.text(facility.as_str());
    }
    let statement = statement.int(i64::from(limit));
    let types = [Int, Text, Text, Text, Text, Text, Int, Int, Text, Text, Int, Text, Text, Int];
    let mut accesses = Vec::new();
    for row in sql.fetch_all(&statement, &types).await? {
        let Ok(
            [
                pk,
                facility,
                patient_id,
                issuer,
                opened_by,
                reason,
                starts_at,
                ends_at,
                reviewed_by,
                note,
                reviewed_at,
                closed_by,
                closed_reason,
                closed_at,
            ],
        ) = <[Value; 14]>::try_from(row)
        else {
            return Err(corrupt("break-glass row"));
        };
        let int = |v: Value| v.as_int().ok_or_else(|| corrupt("break-glass"));
        let text = |v: Value| v.into_text().unwrap_or_default();
        accesses.push(BreakGlass {
            id: int(pk)?,
            access: NewBreakGlass {
                patient: PatientRef {
                    facility: facility_id(facility)?,
                    patient_id: text(patient_id),
                    issuer: text(issuer),
                },
                opened_by: Actor { who: text(opened_by), why: text(reason) },
                starts_at: int(starts_at)?,
                ends_at: int(ends_at)?,
            },
            reviewed: reviewed_at
                .as_int()
                .map(|at| Review { by: Actor { who: text(reviewed_by), why: text(note) }, at }),
            closed: closed_at
                .as_int()
                .map(|at| Revocation { by: Actor { who: text(closed_by), why: text(closed_reason) }, at }),
        });
    }
    Ok(accesses)
}

pub(crate) async fn close_break_glass(
    sql: &mut dyn Sql,
    id: i64,
    facility: Option<&FacilityId>,
    by: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let mut text = "UPDATE break_glass SET ends_at = ?, closed_by = ?, closed_reason = ?, closed_at = ? \
                    WHERE pk = ? AND ends_at > ?"
        .to_owned();
    if facility.is_some() {
        text.push_str(" AND facility_id = ?");
    }
    let mut statement = sql.statement(&text).int(now).text(&by.who).text(&by.why).int(now).int(id).int(now);
    if let Some(facility) = facility {
        statement = statement.text(facility.as_str());
    }
    match sql.execute(&statement).await? {
        0 => Err(StoreError::NotFound("open break-glass access".into())),
        _ => Ok(()),
    }
}

pub(crate) async fn review_break_glass(sql: &mut dyn Sql, id: i64, by: &Actor, now: i64) -> Result<(), StoreError> {
    let statement = sql
        .statement(
            "UPDATE break_glass SET reviewed_by = ?, reviewed_note = ?, reviewed_at = ? \
             WHERE pk = ? AND reviewed_at IS NULL",
        )
        .text(&by.who)
        .text(&by.why)
        .int(now)
        .int(id);
    match sql.execute(&statement).await? {
        0 => Err(StoreError::NotFound("unreviewed break-glass access".into())),
        _ => Ok(()),
    }
}

pub(crate) async fn published_to(
    sql: &mut dyn Sql,
    facility: &FacilityId,
    records: &[RecordId],
    now: i64,
) -> Result<Vec<RecordId>, StoreError> {
    let mut published = Vec::new();
    for chunk in records.chunks(CHUNK) {
        let text = format!(
            "SELECT DISTINCT pub.patient_pk FROM publication pub WHERE pub.patient_pk IN ({}) AND {PUBLISHED_TO}",
            placeholders(chunk.len())
        );
        let statement = chunk.iter().fold(sql.statement(&text), |s, r| s.int(r.0));
        let statement = statement.int(now).int(now).text(facility.as_str());
        for row in sql.fetch_all(&statement, &[ColumnType::Int]).await? {
            published.push(RecordId(row.first().and_then(Value::as_int).ok_or_else(|| corrupt("patient key"))?));
        }
    }
    Ok(published)
}

pub(crate) async fn record_shared_accesses(tx: &mut dyn Sql, accesses: &[SharedAccess]) -> Result<(), StoreError> {
    for chunk in accesses.chunks(CHUNK) {
        let text = format!(
            "INSERT INTO shared_access (accessed_at, facility_id, via, origin_id, study_uid, kind, publication_pk, \
             break_glass_pk) VALUES {}",
            // A NULL key is bound untyped, which PostgreSQL would take for text.
            vec!["(?, ?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT))"; chunk.len()].join(", ")
        );
        let statement = chunk.iter().fold(tx.statement(&text), |s, a| {
            let (publication, break_glass) = match a.grant {
                Grant::Publication(id) => (Value::Int(id), Value::Null),
                Grant::BreakGlass(id) => (Value::Null, Value::Int(id)),
            };
            s.int(a.at)
                .text(a.facility.as_str())
                .text(&a.via)
                .text(a.origin.as_str())
                .text(&a.study_uid)
                .text(a.kind.as_str())
                .bind(publication)
                .bind(break_glass)
        });
        tx.execute(&statement).await?;
    }
    Ok(())
}

pub(crate) async fn shared_accesses(
    sql: &mut dyn Sql,
    facility: Option<&FacilityId>,
    since: i64,
    limit: u32,
) -> Result<Vec<SharedAccess>, StoreError> {
    use ColumnType::{Int, Text};
    let mut text = "SELECT accessed_at, facility_id, via, origin_id, study_uid, kind, publication_pk, break_glass_pk \
                    FROM shared_access WHERE accessed_at >= ?"
        .to_owned();
    if facility.is_some() {
        text.push_str(" AND (facility_id = ? OR origin_id = ?)");
    }
    text.push_str(" ORDER BY pk DESC LIMIT ?");
    let mut statement = sql.statement(&text).int(since);
    if let Some(facility) = facility {
        statement = statement.text(facility.as_str()).text(facility.as_str());
    }
    let statement = statement.int(i64::from(limit));
    let mut accesses = Vec::new();
    for row in sql.fetch_all(&statement, &[Int, Text, Text, Text, Text, Text, Int, Int]).await? {
        let Ok([at, facility, via, origin, study_uid, kind, publication, break_glass]) = <[Value; 8]>::try_from(row)
        else {
            return Err(corrupt("shared access row"));
        };
        let grant = Grant::of(publication.as_int(), break_glass.as_int())
            .ok_or_else(|| corrupt("shared access without a grant"))?;
        accesses.push(SharedAccess {
            at: at.as_int().ok_or_else(|| corrupt("access time"))?,
            facility: facility_id(facility)?,
            via: via.into_text().unwrap_or_default(),
            origin: facility_id(origin)?,
            study_uid: study_uid.into_text().unwrap_or_default(),
            kind: kind.into_text().as_deref().and_then(AccessKind::parse).ok_or_else(|| corrupt("access kind"))?,
            grant,
        });
    }
    Ok(accesses)
}
