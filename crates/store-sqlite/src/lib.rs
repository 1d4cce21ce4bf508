//! The SQLite index backend, Renkei's zero-configuration default.
//!
//! - [`SqliteStore::open`] creates or opens `index.sqlite` in WAL mode with `synchronous=FULL`,
//!   so a committed transaction survives power loss, and runs the migrations.
//! - The store traits run the shared statements of `renkei-store-sql` through [`On`], this
//!   backend's [`Sql`] seam.
//! - Instance writes go through one held writer connection, which remembers its own upserts
//!   while no other process has written (`PRAGMA data_version`).
//!
//! Several processes may open the same file (the server and the admin CLI); SQLite's own
//! locking serialises their writes.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use renkei_domain::model::{Facility, FacilityStats, NewInstance, Node, Principal, StoreOutcome, StoredInstance};
use renkei_domain::query::{Query, QueryMatch};
use renkei_domain::tier::{Access, AccessCount, BlobRef, ColdRule, TierStats};
use renkei_domain::{AeTitle, FacilityId};
use renkei_store::{FacilityStore, InstanceStore, StoreError, TierStore, TokenStore};
use renkei_store_sql::migration::{self, Migration};
use renkei_store_sql::{ColumnType, Dialect, Sql, Statement, UpsertCache, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

/// The schema, in order. Every one so far only expands it.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/0001_archive.sql"), compatible_from: 1 },
    Migration { version: 2, sql: include_str!("../migrations/0002_tokens.sql"), compatible_from: 1 },
    Migration { version: 3, sql: include_str!("../migrations/0003_tiers.sql"), compatible_from: 1 },
];

/// The SQLite index.
#[derive(Clone)]
pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one connection that writes instances: SQLite has a single writer anyway, and a
    /// connection held for good keeps its page cache warm and costs no pool round trip.
    writer: std::sync::Arc<tokio::sync::Mutex<Writer>>,
}

/// The writing connection and what it remembers of its own upserts.
struct Writer {
    connection: SqliteConnection,
    upserts: UpsertCache,
    /// `PRAGMA data_version` when `upserts` was last valid: it changes when another
    /// connection commits.
    data_version: i64,
}

impl SqliteStore {
    /// Opens (creating if needed) the index database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // DICOM matching is case-sensitive; person names are matched on folded keys.
            .pragma("case_sensitive_like", "ON");
        // A local file cannot drop a connection the way a network can: skip the ping that a
        // pool sends before handing each connection out.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(map_error)?;
        let connection = sqlx::ConnectOptions::connect(&options).await.map_err(map_error)?;
        let writer = Writer { connection, upserts: UpsertCache::default(), data_version: -1 };
        let store = Self { pool, writer: std::sync::Arc::new(tokio::sync::Mutex::new(writer)) };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        let user_version: i64 = sqlx::query("PRAGMA user_version").fetch_one(&mut *tx).await.map_err(map_error)?.get(0);
        migration::migrate(&mut On::Connection(&mut tx), MIGRATIONS, user_version).await?;
        tx.commit().await.map_err(map_error)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn readers(&self) -> On<'_> {
        On::Pool(&self.pool)
    }

    /// Records a group of instances in one durable transaction, all or nothing.
    async fn record_together(&self, batch: &[NewInstance], now: i64) -> Result<Vec<StoreOutcome>, StoreError> {
        let mut writer = self.writer.lock().await;
        let Writer { connection, upserts, data_version } = &mut *writer;
        let mut tx = sqlx::Connection::begin_with(connection, "BEGIN IMMEDIATE").await.map_err(map_error)?;
        let current: i64 = sqlx::query("PRAGMA data_version").fetch_one(&mut *tx).await.map_err(map_error)?.get(0);
        if *data_version != current {
            *upserts = UpsertCache::default();
            *data_version = current;
        }
        let recorded = match renkei_store_sql::record_all(&mut On::Connection(&mut tx), batch, now, upserts).await {
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

/// Maps a sqlx error to a store error: a full disk and constraint conflicts are told apart
/// from everything else.
fn map_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        // SQLITE_FULL, and the extended codes of UNIQUE / PRIMARY KEY violations.
        match db.code().as_deref() {
            Some("13") => return StoreError::Full,
            Some("2067") | Some("1555") => return StoreError::Conflict(db.message().to_owned()),
            _ => {}
        }
    }
    if let sqlx::Error::Io(io) = &error
        && io.raw_os_error() == Some(28)
    {
        return StoreError::Full;
    }
    StoreError::Unavailable(Box::new(error))
}

/// Where the shared statements run: the reader pool, or one connection (a transaction).
enum On<'a> {
    Pool(&'a SqlitePool),
    Connection(&'a mut SqliteConnection),
}

fn query(statement: &Statement) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
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

fn read_row(row: &SqliteRow, columns: &[ColumnType]) -> Result<Vec<Value>, StoreError> {
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
        Dialect::Sqlite
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
impl FacilityStore for SqliteStore {
    async fn add_facility(&self, facility: &Facility) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        renkei_store_sql::add_facility(&mut On::Connection(&mut tx), facility).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn facilities(&self) -> Result<Vec<Facility>, StoreError> {
        renkei_store_sql::facilities(&mut self.readers()).await
    }

    async fn facility_of_ae(&self, ae_title: &AeTitle) -> Result<Option<FacilityId>, StoreError> {
        renkei_store_sql::facility_of_ae(&mut self.readers(), ae_title).await
    }

    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        renkei_store_sql::put_node(&mut self.readers(), node).await
    }

    async fn node(&self, facility: &FacilityId, ae_title: &AeTitle) -> Result<Option<Node>, StoreError> {
        renkei_store_sql::node(&mut self.readers(), facility, ae_title).await
    }
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn record_instances(
        &self,
        batch: &[NewInstance],
    ) -> Result<Vec<Result<StoreOutcome, StoreError>>, StoreError> {
        let now = renkei_store_sql::now_unix();
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
        renkei_store_sql::find(&mut self.readers(), facility, query).await
    }

    async fn retrieve(&self, facility: &FacilityId, query: &Query) -> Result<Vec<StoredInstance>, StoreError> {
        renkei_store_sql::retrieve(&mut self.readers(), facility, query).await
    }

    async fn stats(&self) -> Result<Vec<FacilityStats>, StoreError> {
        renkei_store_sql::stats(&mut self.readers()).await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_token(&self, hash: &str, principal: &Principal) -> Result<(), StoreError> {
        renkei_store_sql::add_token(&mut self.readers(), hash, principal).await
    }

    async fn principal(&self, hash: &str) -> Result<Option<Principal>, StoreError> {
        renkei_store_sql::principal(&mut self.readers(), hash).await
    }
}

#[async_trait]
impl TierStore for SqliteStore {
    async fn cold_candidates(
        &self,
        facility: &FacilityId,
        rule: &ColdRule,
        limit: u32,
    ) -> Result<Vec<BlobRef>, StoreError> {
        renkei_store_sql::cold_candidates(&mut self.readers(), facility, rule, limit).await
    }

    async fn mark_cold(&self, blob: &BlobRef) -> Result<(), StoreError> {
        renkei_store_sql::mark_cold(&mut self.readers(), blob).await
    }

    async fn cold_blobs_of_patient(
        &self,
        facility: &FacilityId,
        patient_id: &str,
        except_study: &str,
    ) -> Result<Vec<BlobRef>, StoreError> {
        renkei_store_sql::cold_blobs_of_patient(&mut self.readers(), facility, patient_id, except_study).await
    }

    async fn tier_stats(&self) -> Result<Vec<TierStats>, StoreError> {
        renkei_store_sql::tier_stats(&mut self.readers()).await
    }

    async fn record_accesses(&self, accesses: &[Access]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        renkei_store_sql::record_accesses(&mut On::Connection(&mut tx), accesses).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn access_report(&self, since: i64) -> Result<Vec<AccessCount>, StoreError> {
        renkei_store_sql::access_report(&mut self.readers(), since).await
    }

    async fn try_lease(&self, job: &str, holder: &str, now: i64, seconds: u32) -> Result<bool, StoreError> {
        renkei_store_sql::try_lease(&mut self.readers(), job, holder, now, seconds).await
    }

    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        renkei_store_sql::release_lease(&mut self.readers(), job, holder).await
    }
}

#[cfg(test)]
mod conformance {
    use super::SqliteStore;

    async fn fresh() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("index.sqlite")).await.expect("open store");
        (store, dir)
    }

    renkei_store::store_test_suite!(fresh());

    /// A newer release's expand migration leaves this one working; a contract migration past
    /// it makes it refuse to open the index, saying why.
    #[tokio::test]
    async fn older_releases_open_expanded_schemas_and_refuse_contracted_ones() {
        let (store, dir) = fresh().await;
        let path = dir.path().join("index.sqlite");
        let newer = "INSERT INTO schema_version (version, compatible_from, applied_at) VALUES (?, ?, 0)";
        let latest = super::MIGRATIONS.len() as i64;
        sqlx::query(newer).bind(latest + 1).bind(1_i64).execute(&store.pool).await.expect("expand");
        SqliteStore::open(&path).await.expect("still compatible");
        sqlx::query(newer).bind(latest + 2).bind(latest + 2).execute(&store.pool).await.expect("contract");
        let refused = SqliteStore::open(&path).await.err().expect("refused");
        let expected = format!("needs nodes of schema version {}", latest + 2);
        assert!(format!("{refused:?}").contains(&expected), "{refused:?}");
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_schema() {
        use renkei_domain::model::Facility;
        use renkei_domain::{AeTitle, FacilityId};
        use renkei_store::FacilityStore;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.sqlite");
        let store = SqliteStore::open(&path).await.expect("open");
        let facility = Facility {
            id: FacilityId::new("east").expect("id"),
            name: "East".into(),
            ae_titles: vec![AeTitle::new("CT1").expect("ae")],
        };
        store.add_facility(&facility).await.expect("add");
        store.close().await;
        let reopened = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(reopened.facilities().await.expect("list"), vec![facility]);
    }
}

#[cfg(test)]
mod writers {
    use renkei_domain::model::{BlobHash, Facility, IndexedAttributes, NewInstance};
    use renkei_domain::query::{Attribute, Query, QueryLevel};
    use renkei_domain::{AeTitle, FacilityId, Uid};
    use renkei_store::{FacilityStore, InstanceStore};

    use super::SqliteStore;

    fn instance(sop: &str, name: &str) -> NewInstance {
        NewInstance {
            facility: FacilityId::new("east").expect("id"),
            study_uid: Uid::new("1.1").expect("uid"),
            series_uid: Uid::new("1.1.1").expect("uid"),
            sop_instance_uid: Uid::new(sop).expect("uid"),
            sop_class_uid: Uid::new("1.2.840.10008.5.1.4.1.1.2").expect("uid"),
            transfer_syntax_uid: Uid::new("1.2.840.10008.1.2.1").expect("uid"),
            blob: BlobHash(sop.to_owned()),
            size: 1,
            attributes: IndexedAttributes {
                patient_id: Some("P1".into()),
                patient_name: Some(name.into()),
                ..Default::default()
            },
        }
    }

    async fn patient_name(store: &SqliteStore) -> String {
        let query = Query::new(QueryLevel::Patient, Vec::new());
        let found = store.find(&FacilityId::new("east").expect("id"), &query).await.expect("find");
        found[0].values[&Attribute::PatientName].clone()
    }

    /// The writer skips upserts it has already made; another process writing to the same
    /// file (an import beside the server) must invalidate that memory.
    #[tokio::test]
    async fn another_writer_invalidates_the_upsert_cache() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.sqlite");
        let server = SqliteStore::open(&path).await.expect("open");
        let import = SqliteStore::open(&path).await.expect("open again");
        let facility = Facility {
            id: FacilityId::new("east").expect("id"),
            name: "East".into(),
            ae_titles: vec![AeTitle::new("CT1").expect("ae")],
        };
        server.add_facility(&facility).await.expect("facility");
        server.record_instances(&[instance("1.1.1.1", "Yamada^Tarou")]).await.expect("first");
        import.record_instances(&[instance("1.1.1.2", "Yamada^Taro")]).await.expect("other writer");
        assert_eq!(patient_name(&server).await, "Yamada^Taro");
        server.record_instances(&[instance("1.1.1.3", "Yamada^Tarou")]).await.expect("third");
        assert_eq!(patient_name(&server).await, "Yamada^Tarou", "the latest instance's values win");
    }
}
