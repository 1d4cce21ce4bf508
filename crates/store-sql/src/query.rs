//! Builds the SELECT statements of queries and retrievals.
//!
//! SQL text is assembled only from the static fragments in this file; every value that comes
//! from a request is a bind parameter. The unit tests pin the generated SQL.

use renkei_domain::names::{fuzzy_name_key, name_key};
use renkei_domain::query::{Attribute, MatchKind, Matcher, NameGroup, Query, QueryLevel};
use renkei_store::like_pattern;

use crate::{ColumnType, Dialect, Statement, Value, placeholders};

/// Where an indexed attribute lives: its raw column and the column it is matched on.
struct Column {
    raw: &'static str,
    key: &'static str,
}

fn column(attribute: Attribute) -> Option<Column> {
    use Attribute::*;
    let (raw, key) = match attribute {
        PatientName => ("p.name", "p.name"),
        PatientId => ("p.patient_id", "p.patient_id"),
        IssuerOfPatientId => ("p.issuer", "p.issuer"),
        PatientBirthDate => ("p.birth_date", "p.birth_date_key"),
        PatientSex => ("p.sex", "p.sex"),
        StudyInstanceUid => ("s.study_uid", "s.study_uid"),
        StudyDate => ("s.study_date", "s.study_date_key"),
        StudyTime => ("s.study_time", "s.study_time_key"),
        AccessionNumber => ("s.accession", "s.accession"),
        ReferringPhysicianName => ("s.referring", "s.referring"),
        StudyDescription => ("s.description", "s.description"),
        StudyId => ("s.study_id", "s.study_id"),
        SeriesInstanceUid => ("se.series_uid", "se.series_uid"),
        SeriesDate => ("se.series_date", "se.series_date_key"),
        SeriesTime => ("se.series_time", "se.series_time_key"),
        Modality => ("se.modality", "se.modality"),
        SeriesDescription => ("se.description", "se.description"),
        BodyPartExamined => ("se.body_part", "se.body_part"),
        SeriesNumber => ("se.series_number", "se.series_number"),
        SopClassUid => ("i.sop_class_uid", "i.sop_class_uid"),
        SopInstanceUid => ("i.sop_instance_uid", "i.sop_instance_uid"),
        InstanceNumber => ("i.instance_number", "i.instance_number"),
        NumberOfPatientRelatedStudies
        | NumberOfPatientRelatedSeries
        | NumberOfPatientRelatedInstances
        | ModalitiesInStudy
        | NumberOfStudyRelatedSeries
        | NumberOfStudyRelatedInstances
        | NumberOfSeriesRelatedInstances
        | InstanceAvailability
        | InstitutionName => return None,
    };
    Some(Column { raw, key })
}

/// Attributes derived at query time, for entities of their own level (Instance
/// Availability at every level from study down).
fn computed(attribute: Attribute, level: QueryLevel, dialect: Dialect) -> Option<&'static str> {
    use Attribute::*;
    Some(match attribute {
        NumberOfPatientRelatedStudies => "(SELECT COUNT(*) FROM study x WHERE x.patient_pk = p.pk)",
        NumberOfPatientRelatedSeries => {
            "(SELECT COUNT(*) FROM series x JOIN study y ON y.pk = x.study_pk WHERE y.patient_pk = p.pk)"
        }
        NumberOfPatientRelatedInstances => {
            "(SELECT COUNT(*) FROM instance x JOIN series y ON y.pk = x.series_pk \
             JOIN study z ON z.pk = y.study_pk WHERE z.patient_pk = p.pk)"
        }
        ModalitiesInStudy => match dialect {
            Dialect::Sqlite => {
                "(SELECT group_concat(m, '\\') FROM (SELECT DISTINCT x.modality AS m FROM series x \
                 WHERE x.study_pk = s.pk AND x.modality IS NOT NULL AND x.modality <> '' ORDER BY m))"
            }
            Dialect::Postgres => {
                "(SELECT string_agg(m, '\\' ORDER BY m) FROM (SELECT DISTINCT x.modality AS m FROM series x \
                 WHERE x.study_pk = s.pk AND x.modality IS NOT NULL AND x.modality <> '') AS d)"
            }
        },
        NumberOfStudyRelatedSeries => "(SELECT COUNT(*) FROM series x WHERE x.study_pk = s.pk)",
        NumberOfStudyRelatedInstances => {
            "(SELECT COUNT(*) FROM instance x JOIN series y ON y.pk = x.series_pk WHERE y.study_pk = s.pk)"
        }
        NumberOfSeriesRelatedInstances => "(SELECT COUNT(*) FROM instance x WHERE x.series_pk = se.pk)",
        // NEARLINE as soon as one instance below is only in the cold tier.
        InstanceAvailability => match level {
            QueryLevel::Patient => return None,
            QueryLevel::Study => {
                "CASE WHEN EXISTS (SELECT 1 FROM series y JOIN instance x ON x.series_pk = y.pk \
                 JOIN cold_blob c ON c.blob = x.blob WHERE y.study_pk = s.pk) THEN 'NEARLINE' ELSE 'ONLINE' END"
            }
            QueryLevel::Series => {
                "CASE WHEN EXISTS (SELECT 1 FROM instance x JOIN cold_blob c ON c.blob = x.blob \
                 WHERE x.series_pk = se.pk) THEN 'NEARLINE' ELSE 'ONLINE' END"
            }
            QueryLevel::Image => {
                "CASE WHEN EXISTS (SELECT 1 FROM cold_blob c WHERE c.blob = i.blob) THEN 'NEARLINE' ELSE 'ONLINE' END"
            }
        },
        _ => return None,
    })
}

fn from_clause(level: QueryLevel) -> &'static str {
    match level {
        QueryLevel::Patient => "FROM patient p",
        QueryLevel::Study => "FROM study s JOIN patient p ON p.pk = s.patient_pk",
        QueryLevel::Series => "FROM series se JOIN study s ON s.pk = se.study_pk JOIN patient p ON p.pk = s.patient_pk",
        QueryLevel::Image => {
            "FROM instance i JOIN series se ON se.pk = i.series_pk \
             JOIN study s ON s.pk = se.study_pk JOIN patient p ON p.pk = s.patient_pk"
        }
    }
}

/// The alias of the table a column such as `se.modality` belongs to.
fn table_of(column: &str) -> &str {
    column.split_once('.').map_or(column, |(alias, _)| alias)
}

/// The aliases `from_clause` joins, the main table first.
fn joined_aliases(level: QueryLevel) -> &'static [&'static str] {
    match level {
        QueryLevel::Patient => &["p"],
        QueryLevel::Study => &["s", "p"],
        QueryLevel::Series => &["se", "s", "p"],
        QueryLevel::Image => &["i", "se", "s", "p"],
    }
}

/// The SELECT for a C-FIND/QIDO query, and the attribute and type of each selected column.
/// One more column follows those: the Specific Character Set the values came in.
pub(crate) fn find_statement(
    dialect: Dialect,
    scope: Scope,
    query: &Query,
) -> (Statement, Vec<(Attribute, ColumnType)>) {
    let mut columns = Vec::new();
    let mut select = Vec::new();
    for attribute in Attribute::ALL {
        if attribute.level() > query.level {
            continue;
        }
        if let Some(c) = column(*attribute) {
            select.push(c.raw);
            columns.push((*attribute, ColumnType::Text));
        } else if (attribute.level() == query.level || *attribute == Attribute::InstanceAvailability)
            && let Some(expr) = computed(*attribute, query.level, dialect)
        {
            select.push(expr);
            let kind = if matches!(attribute, Attribute::ModalitiesInStudy | Attribute::InstanceAvailability) {
                ColumnType::Text
            } else {
                ColumnType::Int
            };
            columns.push((*attribute, kind));
        }
    }
    select.push(match query.level {
        QueryLevel::Patient => {
            "(SELECT x.charset FROM study x WHERE x.patient_pk = p.pk AND x.charset IS NOT NULL LIMIT 1)"
        }
        _ => "s.charset",
    });
    let statement = select_statement(dialect, &select.join(", "), query.level, scope, query);
    (statement, columns)
}

/// The SELECT of the current version of every instance under the query's matches. Its
/// columns are study UID, series UID, SOP instance UID, SOP class UID, transfer syntax,
/// blob, size and study date key; shared, the local patient's ID, issuer, name, birth date
/// and sex follow, then [`SHARED_COLUMNS`].
pub(crate) fn retrieve_statement(dialect: Dialect, scope: Scope, query: &Query) -> Statement {
    let own = "s.study_uid, se.series_uid, i.sop_instance_uid, i.sop_class_uid, i.transfer_syntax, i.blob, i.size, \
         s.study_date_key";
    let shared = format!("{own}, p.patient_id, p.issuer, p.name, p.birth_date, p.sex");
    let select = if matches!(scope, Scope::Own(_)) { own } else { &shared };
    let unpaged = Query { limit: None, offset: 0, ..query.clone() };
    select_statement(dialect, select, QueryLevel::Image, scope, &unpaged)
}

/// Whose data a statement reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// A facility's own.
    Own(&'a str),
    /// What other facilities share with this one at `now` (Unix seconds), under its own
    /// patients: studies of persons its patients are linked to, published to it or opened
    /// by its break-glass access, and not held by the facility itself under the same UID.
    /// Study level and below.
    SharedWith { facility: &'a str, now: i64 },
}

/// The columns a shared statement adds at the end: the origin facility, the origin's
/// patient ID and issuer, and the grant (publication and break-glass keys, one of them set).
pub(crate) const SHARED_COLUMNS: [ColumnType; 5] =
    [ColumnType::Text, ColumnType::Text, ColumnType::Text, ColumnType::Int, ColumnType::Int];

/// A current publication `pub` that the facility (bound by the caller after `now` twice) is
/// in the audience of.
pub(crate) const PUBLISHED_TO: &str = "pub.revoked_at IS NULL AND pub.starts_at <= ? AND ? < pub.ends_at \
     AND (pub.to_group = 1 OR EXISTS (SELECT 1 FROM publication_target t WHERE t.publication_pk = pub.pk \
     AND t.facility_id = ?))";

/// Studies (`x.pk`) visible through a facility's current publications or break-glass
/// accesses. Binds: now, now, facility; now, now, facility; facility, now, now.
fn granted_studies() -> String {
    format!(
        "SELECT pub.study_pk FROM publication pub WHERE pub.study_pk IS NOT NULL AND {PUBLISHED_TO} \
         UNION SELECT x.pk FROM publication pub JOIN study x ON x.patient_pk = pub.patient_pk \
         WHERE pub.study_pk IS NULL AND {PUBLISHED_TO} \
         UNION SELECT x.pk FROM break_glass b JOIN patient bl ON bl.pk = b.patient_pk \
         JOIN patient bo ON bo.person_pk = bl.person_pk JOIN study x ON x.patient_pk = bo.pk \
         WHERE b.facility_id = ? AND b.starts_at <= ? AND ? < b.ends_at"
    )
}

fn granted_binds(facility: &str, now: i64) -> Vec<Value> {
    let (f, t) = (|| Value::Text(facility.to_owned()), || Value::Int(now));
    vec![t(), t(), f(), t(), t(), f(), f(), t(), t()]
}

/// The grant columns of a shared row. Binds: now, now, facility; facility, now, now.
fn grant_columns() -> String {
    format!(
        "(SELECT MIN(pub.pk) FROM publication pub WHERE (pub.study_pk = s.pk \
         OR (pub.study_pk IS NULL AND pub.patient_pk = s.patient_pk)) AND {PUBLISHED_TO}), \
         (SELECT MIN(b.pk) FROM break_glass b JOIN patient bl ON bl.pk = b.patient_pk \
         WHERE b.facility_id = ? AND bl.person_pk = op.person_pk AND b.starts_at <= ? AND ? < b.ends_at)"
    )
}

fn select_statement(dialect: Dialect, select: &str, from_level: QueryLevel, scope: Scope, query: &Query) -> Statement {
    let facility = match scope {
        Scope::Own(facility) => facility,
        Scope::SharedWith { facility, now } => {
            return shared_select_statement(dialect, select, from_level, facility, now, query);
        }
    };
    // The facility is stated for every joined table, not only the main one, so that the
    // planner can use each table's (facility_id, uid or name) index for a key on that table.
    // In SQLite, when keys exist but none is on the main table, its facility term is written
    // `+x.facility_id`, which SQLite never uses as an index: otherwise the planner, having no
    // statistics, takes "all of the facility's instances" for selective and scans them to
    // find one study (0.4 s at 100,000 instances) instead of walking down from the study.
    // PostgreSQL keeps statistics and needs no such hint.
    let aliases = joined_aliases(from_level);
    let keyed_tables: Vec<&str> =
        query.constraints().filter_map(|(attribute, _)| column(*attribute).map(|c| table_of(c.key))).collect();
    let keys_only_on_joins =
        dialect == Dialect::Sqlite && !keyed_tables.is_empty() && !keyed_tables.contains(&aliases[0]);
    let facility_is = aliases
        .iter()
        .enumerate()
        .map(|(n, a)| {
            if n == 0 && keys_only_on_joins { format!("+{a}.facility_id = ?") } else { format!("{a}.facility_id = ?") }
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut sql = format!("SELECT {select} {} WHERE {facility_is}", from_clause(from_level));
    let mut binds = vec![Value::Text(facility.to_owned()); aliases.len()];
    for (attribute, matcher) in query.constraints() {
        push_constraint(&mut sql, &mut binds, *attribute, matcher, query.fuzzy);
    }
    finish_select(dialect, sql, binds, &format!("{}.pk", aliases[0]), query)
}

/// A select of what other facilities share with `facility`: their study, series and
/// instance rows (`s`, `se`, `i`) under the facility's own patient `p`, linked to the same
/// person as the origin's patient `op` (the first such patient, if the facility has the
/// person twice, so that nothing goes out twice). It starts from the few studies granted.
fn shared_select_statement(
    dialect: Dialect,
    select: &str,
    from_level: QueryLevel,
    facility: &str,
    now: i64,
    query: &Query,
) -> Statement {
    // No facility terms on the joins: they would let the planner walk all of the origin's
    // instances by facility instead of down from the few granted studies.
    let from = match from_level {
        QueryLevel::Patient | QueryLevel::Study => "FROM study s",
        QueryLevel::Series => "FROM series se JOIN study s ON s.pk = se.study_pk",
        QueryLevel::Image => "FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study s ON s.pk = se.study_pk",
    };
    let text = |v: &str| Value::Text(v.to_owned());
    let mut binds = granted_binds(facility, now);
    binds.truncate(3);
    binds.extend([text(facility), Value::Int(now), Value::Int(now)]);
    let mut sql = format!(
        "SELECT {select}, s.facility_id, op.patient_id, op.issuer, {} {from} \
         JOIN patient op ON op.pk = s.patient_pk JOIN patient p ON p.person_pk = op.person_pk \
         WHERE s.pk IN ({}) AND p.facility_id = ? AND s.facility_id <> ? \
         AND NOT EXISTS (SELECT 1 FROM patient dup WHERE dup.person_pk = p.person_pk AND dup.facility_id = p.facility_id \
         AND dup.pk < p.pk) \
         AND NOT EXISTS (SELECT 1 FROM study own WHERE own.facility_id = ? AND own.study_uid = s.study_uid)",
        grant_columns(),
        granted_studies(),
    );
    binds.extend(granted_binds(facility, now));
    binds.extend([text(facility), text(facility), text(facility)]);
    for (attribute, matcher) in query.constraints() {
        push_constraint(&mut sql, &mut binds, *attribute, matcher, query.fuzzy);
    }
    let main = joined_aliases(from_level)[0];
    let main = if main == "p" { "s" } else { main };
    finish_select(dialect, sql, binds, &format!("{main}.pk"), query)
}

/// Appends the order, limit and offset, and numbers the placeholders.
fn finish_select(dialect: Dialect, mut sql: String, mut binds: Vec<Value>, order_by: &str, query: &Query) -> Statement {
    sql.push_str(&format!(" ORDER BY {order_by}"));
    match query.limit {
        Some(limit) => {
            sql.push_str(" LIMIT ?");
            binds.push(Value::Int(i64::from(limit)));
        }
        // SQLite has no OFFSET without a LIMIT; -1 means none.
        None if query.offset > 0 && dialect == Dialect::Sqlite => sql.push_str(" LIMIT -1"),
        None => {}
    }
    if query.offset > 0 {
        sql.push_str(" OFFSET ?");
        binds.push(Value::Int(i64::from(query.offset)));
    }
    Statement { sql: dialect.placeholders(&sql).into_owned(), binds }
}

/// The key columns of a person-name attribute, per component group, strict then fuzzy.
fn name_columns(attribute: Attribute, group: NameGroup, fuzzy: bool) -> &'static [&'static str] {
    use NameGroup::*;
    match (attribute, group, fuzzy) {
        (Attribute::PatientName, Any, false) => &["p.name_a", "p.name_i", "p.name_p"],
        (Attribute::PatientName, Alphabetic, false) => &["p.name_a"],
        (Attribute::PatientName, Ideographic, false) => &["p.name_i"],
        (Attribute::PatientName, Phonetic, false) => &["p.name_p"],
        (Attribute::PatientName, Any, true) => &["p.name_a_fuzzy", "p.name_i_fuzzy", "p.name_p_fuzzy"],
        (Attribute::PatientName, Alphabetic, true) => &["p.name_a_fuzzy"],
        (Attribute::PatientName, Ideographic, true) => &["p.name_i_fuzzy"],
        (Attribute::PatientName, Phonetic, true) => &["p.name_p_fuzzy"],
        (_, Any, false) => &["s.referring_a", "s.referring_i", "s.referring_p"],
        (_, Alphabetic, false) => &["s.referring_a"],
        (_, Ideographic, false) => &["s.referring_i"],
        (_, Phonetic, false) => &["s.referring_p"],
        (_, Any, true) => &["s.referring_a_fuzzy", "s.referring_i_fuzzy", "s.referring_p_fuzzy"],
        (_, Alphabetic, true) => &["s.referring_a_fuzzy"],
        (_, Ideographic, true) => &["s.referring_i_fuzzy"],
        (_, Phonetic, true) => &["s.referring_p_fuzzy"],
    }
}

fn push_constraint(sql: &mut String, binds: &mut Vec<Value>, attribute: Attribute, matcher: &Matcher, fuzzy: bool) {
    if let Matcher::PersonName(parts) = matcher {
        for (group, pattern) in parts {
            let key = if fuzzy { fuzzy_name_key(pattern) } else { name_key(pattern) };
            let (operator, value) =
                if key.contains(['*', '?']) { ("LIKE ? ESCAPE '\\'", like_pattern(&key)) } else { ("= ?", key) };
            let columns = name_columns(attribute, *group, fuzzy);
            let alternatives: Vec<String> = columns.iter().map(|c| format!("{c} {operator}")).collect();
            sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
            binds.extend(columns.iter().map(|_| Value::Text(value.clone())));
        }
        return;
    }
    if attribute == Attribute::ModalitiesInStudy {
        // Matches a study when any of its series has one of the listed modalities.
        let exists = "EXISTS (SELECT 1 FROM series x WHERE x.study_pk = s.pk AND x.modality";
        match matcher {
            Matcher::Exact(list) => {
                let values: Vec<&str> = list.split('\\').collect();
                sql.push_str(&format!(" AND {exists} IN ({}))", placeholders(values.len())));
                binds.extend(values.into_iter().map(|v| Value::Text(v.to_owned())));
            }
            Matcher::Wildcard(pattern) => {
                sql.push_str(&format!(" AND {exists} LIKE ? ESCAPE '\\')"));
                binds.push(Value::Text(like_pattern(pattern)));
            }
            _ => {}
        }
        return;
    }
    let Some(c) = column(attribute) else { return };
    let target = match attribute.kind() {
        MatchKind::Date | MatchKind::Time => c.key,
        _ => c.raw,
    };
    match matcher {
        Matcher::Universal => {}
        Matcher::Exact(value) => {
            sql.push_str(&format!(" AND {target} = ?"));
            binds.push(Value::Text(value.clone()));
        }
        Matcher::Wildcard(pattern) => {
            sql.push_str(&format!(" AND {target} LIKE ? ESCAPE '\\'"));
            binds.push(Value::Text(like_pattern(pattern)));
        }
        Matcher::Range { from, to } => {
            sql.push_str(&format!(" AND {target} <> ''"));
            if let Some(from) = from {
                sql.push_str(&format!(" AND {target} >= ?"));
                binds.push(Value::Text(from.clone()));
            }
            if let Some(to) = to {
                sql.push_str(&format!(" AND {target} <= ?"));
                binds.push(Value::Text(to.clone()));
            }
        }
        Matcher::UidList(uids) => {
            sql.push_str(&format!(" AND {target} IN ({})", placeholders(uids.len())));
            binds.extend(uids.iter().map(|u| Value::Text(u.as_str().to_owned())));
        }
        Matcher::PersonName(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use renkei_domain::query::QueryKey;

    use super::*;

    fn key(attribute: Attribute, raw: &str) -> QueryKey {
        QueryKey { attribute, matcher: Matcher::parse(attribute, raw).expect("valid") }
    }

    #[test]
    fn study_query_sql_binds_every_value() {
        let query = Query {
            level: QueryLevel::Study,
            keys: vec![
                key(Attribute::PatientName, "やま*"),
                key(Attribute::StudyDate, "20240101-"),
                key(Attribute::ModalitiesInStudy, "CT\\MR"),
                key(Attribute::Modality, "CT"),
                key(Attribute::StudyInstanceUid, "1.2\\1.3"),
            ],
            limit: Some(10),
            offset: 5,
            fuzzy: false,
        };
        let (statement, _) = find_statement(Dialect::Sqlite, Scope::Own("east"), &query);
        let (_, where_clause) = statement.sql.split_once("ON p.pk = s.patient_pk WHERE ").expect("where clause");
        assert_eq!(
            where_clause,
            "s.facility_id = ? AND p.facility_id = ? AND (p.name_a LIKE ? ESCAPE '\\' OR p.name_i LIKE ? ESCAPE '\\' \
             OR p.name_p LIKE ? ESCAPE '\\') AND s.study_date_key <> '' \
             AND s.study_date_key >= ? AND EXISTS (SELECT 1 FROM series x \
             WHERE x.study_pk = s.pk AND x.modality IN (?, ?)) AND s.study_uid IN (?, ?) ORDER BY s.pk LIMIT ? OFFSET ?"
        );
        assert_eq!(
            statement.binds,
            vec![
                Value::Text("east".into()),
                Value::Text("east".into()),
                Value::Text("ヤマ%".into()),
                Value::Text("ヤマ%".into()),
                Value::Text("ヤマ%".into()),
                Value::Text("20240101".into()),
                Value::Text("CT".into()),
                Value::Text("MR".into()),
                Value::Text("1.2".into()),
                Value::Text("1.3".into()),
                Value::Int(10),
                Value::Int(5),
            ]
        );
    }

    #[test]
    fn quotes_in_values_never_reach_the_sql() {
        let query = Query {
            level: QueryLevel::Patient,
            keys: vec![key(Attribute::PatientId, "x' OR 1=1 --")],
            limit: None,
            offset: 0,
            fuzzy: false,
        };
        let (statement, _) = find_statement(Dialect::Sqlite, Scope::Own("east"), &query);
        assert!(!statement.sql.contains("OR 1=1"));
        assert!(statement.binds.contains(&Value::Text("x' OR 1=1 --".into())));
    }

    #[test]
    fn retrieval_ignores_paging_and_selects_from_instances() {
        let query = Query {
            level: QueryLevel::Series,
            keys: vec![key(Attribute::SeriesInstanceUid, "1.2.3")],
            limit: Some(1),
            offset: 3,
            fuzzy: false,
        };
        let statement = retrieve_statement(Dialect::Sqlite, Scope::Own("east"), &query);
        assert!(statement.sql.contains("FROM instance i JOIN series se"));
        // Found from the series down, never by scanning the facility's instances.
        assert!(
            statement.sql.contains(
                "WHERE +i.facility_id = ? AND se.facility_id = ? AND s.facility_id = ? AND p.facility_id = ?"
            )
        );
        assert!(statement.sql.ends_with("AND se.series_uid = ? ORDER BY i.pk"));
        assert_eq!(statement.binds.last(), Some(&Value::Text("1.2.3".into())));
    }
}

#[cfg(test)]
mod postgres_tests {
    use renkei_domain::query::QueryKey;

    use super::*;

    fn key(attribute: Attribute, raw: &str) -> QueryKey {
        QueryKey { attribute, matcher: Matcher::parse(attribute, raw).expect("valid") }
    }

    #[test]
    fn postgres_statements_number_placeholders_and_need_no_planner_hint() {
        let query = Query {
            level: QueryLevel::Series,
            keys: vec![key(Attribute::SeriesInstanceUid, "1.2.3"), key(Attribute::PatientId, "P1")],
            limit: None,
            offset: 4,
            fuzzy: false,
        };
        let (statement, _) = find_statement(Dialect::Postgres, Scope::Own("east"), &query);
        assert!(statement.sql.contains("WHERE se.facility_id = $1 AND s.facility_id = $2 AND p.facility_id = $3"));
        assert!(statement.sql.ends_with("AND se.series_uid = $4 AND p.patient_id = $5 ORDER BY se.pk OFFSET $6"));
        assert!(!statement.sql.contains('?'));
        assert_eq!(statement.binds.len(), 6);
    }

    #[test]
    fn modalities_in_study_aggregate_per_dialect() {
        let query = Query { level: QueryLevel::Study, keys: Vec::new(), limit: Some(2), offset: 0, fuzzy: false };
        let (sqlite, _) = find_statement(Dialect::Sqlite, Scope::Own("east"), &query);
        let (postgres, _) = find_statement(Dialect::Postgres, Scope::Own("east"), &query);
        assert!(sqlite.sql.contains("group_concat(m, '\\')"));
        assert!(postgres.sql.contains("string_agg(m, '\\' ORDER BY m)"));
        assert!(sqlite.sql.ends_with("ORDER BY s.pk LIMIT ?"));
        assert!(postgres.sql.ends_with("ORDER BY s.pk LIMIT $3"));
    }

    #[test]
    fn sqlite_offsets_without_a_limit_say_so() {
        let query = Query { level: QueryLevel::Patient, keys: Vec::new(), limit: None, offset: 2, fuzzy: false };
        let (statement, _) = find_statement(Dialect::Sqlite, Scope::Own("east"), &query);
        assert!(statement.sql.ends_with("ORDER BY p.pk LIMIT -1 OFFSET ?"));
    }
}
