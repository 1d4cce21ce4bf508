//! Schema versions for rolling upgrades (expand/contract).
//!
//! Every backend lists its [`Migration`]s in order and records each one applied in the
//! `schema_version` table, with the oldest schema version whose code still works on it.
//! - An *expand* migration only adds (tables, nullable columns, indexes): code written for
//!   the previous version keeps working, so it keeps the previous `compatible_from`.
//! - A *contract* migration removes what older code still reads; it raises
//!   `compatible_from`, and ships only once no node older than that runs.
//!
//! So during an upgrade the first new node expands the schema while older nodes keep
//! serving; a node that finds a newer schema starts if that schema still accepts it, and
//! refuses clearly otherwise.

use renkei_store::StoreError;

use crate::{ColumnType, Sql, now_unix};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, … in order.
    pub version: i64,
    pub sql: &'static str,
    /// The oldest schema version whose code works on the schema after this migration.
    pub compatible_from: i64,
}

const CREATE_SCHEMA_VERSION: &str = "\
    CREATE TABLE IF NOT EXISTS schema_version (\
      version BIGINT PRIMARY KEY, compatible_from BIGINT NOT NULL, applied_at BIGINT NOT NULL)";

/// What to do with a database whose latest applied migration is `applied` (with its
/// `compatible_from`), for code that knows `known`.
pub fn pending(known: &[Migration], applied: Option<(i64, i64)>) -> Result<&[Migration], StoreError> {
    let latest = known.last().map_or(0, |m| m.version);
    let Some((version, compatible_from)) = applied else { return Ok(known) };
    if version <= latest {
        return Ok(&known[known.iter().take_while(|m| m.version <= version).count()..]);
    }
    if compatible_from <= latest {
        // A newer node has expanded the schema; this one still fits it.
        return Ok(&[]);
    }
    Err(StoreError::Unavailable(
        format!(
            "the index schema is at version {version}, which needs nodes of schema version {compatible_from} \
             or later; this node knows version {latest}: upgrade it"
        )
        .into(),
    ))
}

/// Brings the schema up to date inside the caller's transaction, which the backend must
/// hold exclusively (one migrator at a time). `recorded_elsewhere` is how many migrations a
/// database applied before it had a `schema_version` table (SQLite kept the count in
/// `PRAGMA user_version`).
pub async fn migrate(tx: &mut dyn Sql, known: &[Migration], recorded_elsewhere: i64) -> Result<(), StoreError> {
    tx.execute_script(CREATE_SCHEMA_VERSION).await?;
    let latest = tx.statement("SELECT version, compatible_from FROM schema_version ORDER BY version DESC LIMIT 1");
    let mut applied = tx
        .fetch_optional(&latest, &[ColumnType::Int, ColumnType::Int])
        .await?
        .map(|row| (row[0].as_int().unwrap_or(0), row[1].as_int().unwrap_or(0)));
    if applied.is_none() && recorded_elsewhere > 0 {
        for migration in known.iter().take_while(|m| m.version <= recorded_elsewhere) {
            tx.execute(&applied_statement(tx, migration)).await?;
            applied = Some((migration.version, migration.compatible_from));
        }
    }
    for migration in pending(known, applied)? {
        tx.execute_script(migration.sql).await?;
        tx.execute(&applied_statement(tx, migration)).await?;
        tracing::info!(version = migration.version, "applied index migration");
    }
    Ok(())
}

fn applied_statement(sql: &dyn Sql, migration: &Migration) -> crate::Statement {
    sql.statement("INSERT INTO schema_version (version, compatible_from, applied_at) VALUES (?, ?, ?)")
        .int(migration.version)
        .int(migration.compatible_from)
        .int(now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] =
        &[Migration { version: 1, sql: "", compatible_from: 1 }, Migration { version: 2, sql: "", compatible_from: 1 }];

    #[test]
    fn a_fresh_database_gets_every_migration_and_a_current_one_none() {
        assert_eq!(pending(KNOWN, None).expect("fresh").len(), 2);
        assert_eq!(pending(KNOWN, Some((1, 1))).expect("behind")[0].version, 2);
        assert!(pending(KNOWN, Some((2, 1))).expect("current").is_empty());
    }

    #[test]
    fn an_older_node_runs_on_an_expanded_schema_but_not_a_contracted_one() {
        assert!(pending(KNOWN, Some((3, 2))).expect("expanded by a newer node").is_empty());
        let refused = pending(KNOWN, Some((4, 3))).expect_err("contracted past this node");
        let StoreError::Unavailable(why) = refused else { panic!("refused as unavailable") };
        assert!(why.to_string().contains("schema version 3 or later"), "{why}");
    }
}
