//! The PostgreSQL index backend: one index that several `renkei` nodes share.
//!
//! - [`PostgresStore::open`] connects a pool to a `postgres://` URL and brings the schema up
//!   to date under an advisory lock, so nodes starting together migrate once.
//! - It is a [`SqlBackend`]: the store traits are `renkei_store_sql::SqlStore<PostgresStore>`,
//!   running the shared statements through [`On`], this backend's [`Sql`] seam.
//! - Each batch of instances is one transaction. Upserts are remembered only within it:
//!   other nodes write the same rows, so nothing is cached across transactions.
//!
//! - `cluster` (feature `cluster`, and in tests): a throwaway cluster for tests and benchmarks.
//!
//! Any node may write at any time; PostgreSQL's row locks serialise writes to the same
//! patient, study or series, and unique keys make concurrent first writes converge.

#[cfg(any(test, feature = "cluster"))]
pub mod cluster;

use std::time::Duration;

use async_trait::async_trait;
use renkei_domain::model::{NewInstance, StoreOutcome};
use renkei_store::StoreError;
use renkei_store_sql::migration::{self, Migration};
use renkei_store_sql::{Dialect, Sql, SqlBackend, SqlTransaction, UpsertCache};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema, in order. Every one so far only expands it.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/0001_archive.sql"), compatible_from: 1 },
    Migration { version: 2, sql: include_str!("../migrations/0002_tiers.sql"), compatible_from: 1 },
    Migration { version: 3, sql: include_str!("../migrations/0003_mpi.sql"), compatible_from: 1 },
    Migration { version: 4, sql: include_str!("../migrations/0004_sharing.sql"), compatible_from: 1 },
    Migration { version: 5, sql: include_str!("../migrations/0005_dose.sql"), compatible_from: 1 },
    Migration { version: 6, sql: include_str!("../migrations/0006_dose_benchmark.sql"), compatible_from: 1 },
    Migration { version: 7, sql: include_str!("../migrations/0007_dose_image.sql"), compatible_from: 1 },
    Migration { version: 8, sql: include_str!("../migrations/0008_dose_exam_lists.sql"), compatible_from: 1 },
];

/// The advisory lock that serialises migrations across nodes ("RENKEI" in ASCII).
const MIGRATION_LOCK: i64 = 0x5245_4E4B_4549;

/// The PostgreSQL index.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host/db?…`, as libpq reads it)
    /// with up to `max_connections`, and brings its schema up to date.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(map_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(map_error)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        migration::migrate(&mut On::Connection(&mut tx), MIGRATIONS, 0).await?;
        tx.commit().await.map_err(map_error)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl SqlBackend for PostgresStore {
    fn reader(&self) -> Box<dyn Sql + '_> {
        Box::new(On::Pool(&self.pool))
    }

    async fn transaction(&self) -> Result<Box<dyn SqlTransaction + '_>, StoreError> {
        Ok(Box::new(On::Transaction(self.pool.begin().await.map_err(map_error)?)))
    }

    async fn record_together(&self, batch: &[NewInstance], now: i64) -> Result<Vec<StoreOutcome>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let mut upserts = UpsertCache::default();
        let outcomes = renkei_store_sql::record_all(&mut On::Connection(&mut tx), batch, now, &mut upserts).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(outcomes)
    }
}

/// Maps a sqlx error to a store error by SQLSTATE: unique violations are conflicts, a full
/// disk is `Full`, and everything else (lost connections, deadlocks) is unavailable.
fn map_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        match db.code().as_deref() {
            Some("53100") => return StoreError::Full,
            Some("23505") => return StoreError::Conflict(db.message().to_owned()),
            _ => {}
        }
    }
    StoreError::Unavailable(Box::new(error))
}

/// PostgreSQL as the shared statements see it.
struct Driver;

impl renkei_store_sql::Driver for Driver {
    type DB = sqlx::Postgres;
    const DIALECT: Dialect = Dialect::Postgres;

    fn store_error(error: sqlx::Error) -> StoreError {
        map_error(error)
    }

    fn rows_affected(result: &<sqlx::Postgres as sqlx::Database>::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Where the shared statements run: the pool, one connection, or a transaction.
type On<'a> = renkei_store_sql::On<'a, Driver>;

#[cfg(test)]
mod conformance {
    use renkei_store_sql::SqlStore;

    use super::PostgresStore;
    use crate::cluster::Cluster;

    async fn fresh() -> (SqlStore<PostgresStore>, Cluster) {
        let cluster = Cluster::start().expect("start a throwaway PostgreSQL cluster");
        let store = PostgresStore::open(&cluster.url(), 4).await.expect("open store");
        (SqlStore(store), cluster)
    }

    renkei_store::store_test_suite!(fresh());

    /// A rolling upgrade: a newer node's expand migration leaves this node working; a
    /// contract migration past it makes it refuse to start, saying why.
    #[tokio::test]
    async fn older_nodes_run_on_expanded_schemas_and_refuse_contracted_ones() {
        let (store, cluster) = fresh().await;
        let newer = "INSERT INTO schema_version (version, compatible_from, applied_at) VALUES ($1, $2, 0)";
        let latest = super::MIGRATIONS.len() as i64;
        sqlx::query(newer).bind(latest + 1).bind(1_i64).execute(&store.pool).await.expect("expand");
        PostgresStore::open(&cluster.url(), 2).await.expect("still compatible");
        sqlx::query(newer).bind(latest + 2).bind(latest + 2).execute(&store.pool).await.expect("contract");
        let refused = PostgresStore::open(&cluster.url(), 2).await.err().expect("refused");
        let expected = format!("needs nodes of schema version {}", latest + 2);
        assert!(format!("{refused:?}").contains(&expected), "{refused:?}");
    }

    /// Nodes starting together migrate once: the advisory lock serialises them.
    #[tokio::test]
    async fn nodes_starting_together_migrate_once() {
        let cluster = Cluster::start().expect("cluster");
        let url = cluster.url();
        let (first, second) = tokio::join!(PostgresStore::open(&url, 2), PostgresStore::open(&url, 2));
        let (first, second) = (first.expect("first node"), second.expect("second node"));
        let versions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM schema_version").fetch_one(&first.pool).await.expect("count");
        assert_eq!(versions, super::MIGRATIONS.len() as i64);
        second.close().await;
    }
}
