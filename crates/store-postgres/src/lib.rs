//! The PostgreSQL index backend: one index that several `renkei` nodes share.
//!
//! - [`PostgresStore::open`] connects a pool to a `postgres://` URL and brings the schema up
//!   to date under an advisory lock, so nodes starting together migrate once.
//! - The store traits run the shared statements of `renkei-store-sql` through [`On`], this
//!   backend's [`Sql`] seam.
//! - Each batch of instances is one transaction. Upserts are remembered only within it:
//!   other nodes write the same rows, so nothing is cached across transactions.
//!
//! Any node may write at any time; PostgreSQL's row locks serialise writes to the same
//! patient, study or series, and unique keys make concurrent first writes converge.

use std::time::Duration;

use async_trait::async_trait;
use renkei_domain::model::{Facility, FacilityStats, NewInstance, Node, Principal, StoreOutcome, StoredInstance};
use renkei_domain::query::{Query, QueryMatch};
use renkei_domain::tier::{Access, AccessCount, BlobRef, ColdRule, TierStats};
use renkei_domain::{AeTitle, FacilityId};
use renkei_store::{FacilityStore, InstanceStore, StoreError, TierStore, TokenStore};
use renkei_store_sql::migration::{self, Migration};
use renkei_store_sql::{ColumnType, Dialect, Sql, Statement, UpsertCache, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};

/// The schema, in order. Every one so far only expands it.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/0001_archive.sql"), compatible_from: 1 },
    Migration { version: 2, sql: include_str!("../migrations/0002_tiers.sql"), compatible_from: 1 },
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

    fn pool(&self) -> On<'_> {
        On::Pool(&self.pool)
    }

    /// Records a group of instances in one transaction, all or nothing.
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

/// Where the shared statements run: the pool, or one connection (a transaction).
enum On<'a> {
    Pool(&'a PgPool),
    Connection(&'a mut PgConnection),
}

fn query(statement: &Statement) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.as_str()));
    for value in &statement.binds {
        query = match value {
            Value::Null => query.bind(None::<&str>),
            Value::Text(text) => query.bind(text.as_str()),
            Value::Int(int) => query.bind(*int),
        };
    }
    query
}

fn read_row(row: &PgRow, columns: &[ColumnType]) -> Result<Vec<Value>, StoreError> {
    let mut values = Vec::with_capacity(columns.len());
    for (index, column) in columns.iter().enumerate() {
        values.push(match column {
            ColumnType::Text => Value::text(row.try_get::<Option<&str>, _>(index).map_err(map_error)?),
            ColumnType::Int => row.try_get::<Option<i64>, _>(index).map_err(map_error)?.map_or(Value::Null, Value::Int),
        });
    }
    Ok(values)
}

#[async_trait]
impl Sql for On<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute_script(&mut self, sql: &str) -> Result<(), StoreError> {
        let script = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        match self {
            On::Pool(pool) => script.execute(*pool).await,
            On::Connection(connection) => script.execute(&mut **connection).await,
        }
        .map(drop)
        .map_err(map_error)
    }

    async fn execute(&mut self, statement: &Statement) -> Result<u64, StoreError> {
        match self {
            On::Pool(pool) => query(statement).execute(*pool).await,
            On::Connection(connection) => query(statement).execute(&mut **connection).await,
        }
        .map(|done| done.rows_affected())
        .map_err(map_error)
    }

    async fn fetch_all(
        &mut self,
        statement: &Statement,
        columns: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let rows = match self {
            On::Pool(pool) => query(statement).fetch_all(*pool).await,
            On::Connection(connection) => query(statement).fetch_all(&mut **connection).await,
        }
        .map_err(map_error)?;
        rows.iter().map(|row| read_row(row, columns)).collect()
    }
}

#[async_trait]
impl FacilityStore for PostgresStore {
    async fn add_facility(&self, facility: &Facility) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        renkei_store_sql::add_facility(&mut On::Connection(&mut tx), facility).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn facilities(&self) -> Result<Vec<Facility>, StoreError> {
        renkei_store_sql::facilities(&mut self.pool()).await
    }

    async fn facility_of_ae(&self, ae_title: &AeTitle) -> Result<Option<FacilityId>, StoreError> {
        renkei_store_sql::facility_of_ae(&mut self.pool(), ae_title).await
    }

    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        renkei_store_sql::put_node(&mut self.pool(), node).await
    }

    async fn node(&self, facility: &FacilityId, ae_title: &AeTitle) -> Result<Option<Node>, StoreError> {
        renkei_store_sql::node(&mut self.pool(), facility, ae_title).await
    }
}

#[async_trait]
impl InstanceStore for PostgresStore {
    async fn record_instances(
        &self,
        batch: &[NewInstance],
    ) -> Result<Vec<Result<StoreOutcome, StoreError>>, StoreError> {
        let now = renkei_store_sql::now_unix();
        match self.record_together(batch, now).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            // Something in the group failed (a bad instance, or a deadlock with another
            // node's batch) and the transaction rolled back: record each instance on its
            // own, so that one bad instance fails only itself.
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
        renkei_store_sql::find(&mut self.pool(), facility, query).await
    }

    async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, StoreError> {
        renkei_store_sql::retrieve(&mut self.pool(), facility, query).await
    }

    async fn stats(&self) -> Result<Vec<FacilityStats>, StoreError> {
        renkei_store_sql::stats(&mut self.pool()).await
    }
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn add_token(&self, hash: &str, principal: &Principal) -> Result<(), StoreError> {
        renkei_store_sql::add_token(&mut self.pool(), hash, principal).await
    }

    async fn principal(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        renkei_store_sql::principal(&mut self.pool(), hash).await
    }
}

#[async_trait]
impl TierStore for PostgresStore {
    async fn cold_candidates(
        &self,
        facility: &FacilityId,
        rule: &ColdRule,
        limit: u32,
    ) -> Result<Vec<BlobRef>, StoreError> {
        renkei_store_sql::cold_candidates(&mut self.pool(), facility, rule, limit).await
    }

    async fn mark_cold(&self, blob: &BlobRef) -> Result<(), StoreError> {
        renkei_store_sql::mark_cold(&mut self.pool(), blob).await
    }

    async fn cold_blobs_of_patient(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        except_study: &str,
    ) -> Result<Vec<BlobRef>, StoreError> {
        renkei_store_sql::cold_blobs_of_patient(&mut self.pool(), facility, patient_id, except_study).await
    }

    async fn tier_stats(&self) -> Result<Vec<TierStats>, StoreError> {
        renkei_store_sql::tier_stats(&mut self.pool()).await
    }

    async fn record_accesses(&self, accesses: &[Access]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        renkei_store_sql::record_accesses(&mut On::Connection(&mut tx), accesses).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn access_report(&self, since: i64) -> Result<Vec<AccessCount>, StoreError> {
        renkei_store_sql::access_report(&mut self.pool(), since).await
    }

    async fn try_lease(&self, job: &str, holder: &str, now: i64, seconds: u32) -> Result<bool, StoreError> {
        renkei_store_sql::try_lease(&mut self.pool(), job, holder, now, seconds).await
    }

    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        renkei_store_sql::release_lease(&mut self.pool(), job, holder).await
    }
}

#[cfg(test)]
mod conformance {
    use renkei_testkit::postgres::Cluster;

    use super::PostgresStore;

    async fn fresh() -> (PostgresStore, Cluster) {
        let cluster = Cluster::start().expect("start a throwaway PostgreSQL cluster");
        let store = PostgresStore::open(&cluster.url(), 4).await.expect("open store");
        (store, cluster)
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
