//! The SQLite index backend, Renkei's zero-configuration default.
//!
//! - [`SqliteStore::open`] creates or opens `index.sqlite` in WAL mode with `synchronous=FULL`,
//!   so a committed transaction survives power loss, and runs the migrations.
//! - Checkpoints (copying the WAL back into the database file, and syncing it) run every
//!   second on a task of their own, not inside whichever commit crosses SQLite's threshold:
//!   that commit would otherwise wait for them.
//! - It is a [`SqlBackend`]: the store traits are `renkei_store_sql::SqlStore<SqliteStore>`,
//!   running the shared statements through [`On`], this backend's [`Sql`] seam.
//! - Instance writes go through one held writer connection, which remembers its own upserts
//!   while no other process has written (`PRAGMA data_version`).
//!
//! Several processes may open the same file (the server and the admin CLI); SQLite's own
//! locking serialises their writes.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use renkei_domain::model::{NewInstance, StoreOutcome};
use renkei_store::StoreError;
use renkei_store_sql::migration::{self, Migration};
use renkei_store_sql::{Dialect, Sql, SqlBackend, SqlTransaction, UpsertCache};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

/// The schema, in order. Every one so far only expands it.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/0001_archive.sql"), compatible_from: 1 },
    Migration { version: 2, sql: include_str!("../migrations/0002_tokens.sql"), compatible_from: 1 },
    Migration { version: 3, sql: include_str!("../migrations/0003_tiers.sql"), compatible_from: 1 },
    Migration { version: 4, sql: include_str!("../migrations/0004_mpi.sql"), compatible_from: 1 },
    Migration { version: 5, sql: include_str!("../migrations/0005_sharing.sql"), compatible_from: 1 },
    Migration { version: 6, sql: include_str!("../migrations/0006_dose.sql"), compatible_from: 1 },
    Migration { version: 7, sql: include_str!("../migrations/0007_dose_benchmark.sql"), compatible_from: 1 },
    Migration { version: 8, sql: include_str!("../migrations/0008_dose_image.sql"), compatible_from: 1 },
    Migration { version: 9, sql: include_str!("../migrations/0009_dose_exam_lists.sql"), compatible_from: 1 },
];

/// The SQLite index.
#[derive(Clone)]
pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one connection that writes instances: SQLite has a single writer anyway, and a
    /// connection held for good keeps its page cache warm and costs no pool round trip.
    writer: std::sync::Arc<tokio::sync::Mutex<Writer>>,
    /// Set when closing: the periodic checkpoint stops, so that the final one can run.
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
            .pragma("case_sensitive_like", "ON")
            .pragma("wal_autocheckpoint", "0");
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
        let closing = std::sync::Arc::default();
        let store = Self { pool, writer: std::sync::Arc::new(tokio::sync::Mutex::new(writer)), closing };
        store.migrate().await?;
        tokio::spawn(checkpoint_every_second(store.pool.clone(), store.closing.clone()));
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        let user_version: i64 = sqlx::query("PRAGMA user_version").fetch_one(&mut *tx).await.map_err(map_error)?.get(0);
        migration::migrate(&mut On::Connection(&mut tx), MIGRATIONS, user_version).await?;
        tx.commit().await.map_err(map_error)
    }

    /// Checkpoints the WAL fully and closes the pool, waiting for connections to be returned.
    /// A checkpoint still running (after a rebuild's gigabyte of WAL, seconds) is waited
    /// for, up to a minute: a WAL left that large slows every read of the next process.
    pub async fn close(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            // The first column is 1 when the checkpoint could not complete (another one
            // runs, or a reader is behind).
            match sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await {
                Ok(row) if row.get::<i64, _>(0) == 0 => break,
                Ok(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(_) => {
                    tracing::warn!("final checkpoint did not complete; the next open finishes it");
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, "final checkpoint did not complete; the next open finishes it");
                    break;
                }
            }
        }
        self.pool.close().await;
    }
}

/// Empties the WAL, waiting at most 200 ms for readers: writers wait while it does, so
/// a long read must not hold ingest back (it is tried again a second later).
async fn restart_wal(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut connection = pool.acquire().await?;
    sqlx::query("PRAGMA busy_timeout = 200").execute(&mut *connection).await?;
    let restarted = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *connection).await;
    sqlx::query("PRAGMA busy_timeout = 30000").execute(&mut *connection).await?;
    restarted.map(drop)
}

/// WAL frames (pages) past which the WAL is restarted: 64 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Copies committed WAL frames into the database file every second, without waiting for
/// readers or writers (`PASSIVE`), until the store closes. Under writes that never pause,
/// a passive checkpoint never catches up with the last frame, so SQLite never starts the
/// WAL over and the file grows without end (a million dose exams left 10 GB of WAL and a
/// full disk). Once the WAL passes `WAL_RESTART_FRAMES`, a `TRUNCATE` checkpoint holds
/// writers back for the few frames left, then empties it.
async fn checkpoint_every_second(pool: SqlitePool, closing: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        if pool.is_closed() || closing.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        // The second column is the WAL's length in frames.
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await {
            Ok(row) if row.get::<i64, _>(1) > WAL_RESTART_FRAMES => {
                if let Err(error) = restart_wal(&pool).await {
                    tracing::debug!(%error, "WAL restart skipped");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "checkpoint skipped"),
        }
    }
}

#[async_trait]
impl SqlBackend for SqliteStore {
    fn reader(&self) -> Box<dyn Sql + '_> {
        Box::new(On::Pool(&self.pool))
    }

    /// `BEGIN IMMEDIATE`: the write lock up front, so that two writers queue instead of
    /// failing to upgrade.
    async fn transaction(&self) -> Result<Box<dyn SqlTransaction + '_>, StoreError> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        Ok(Box::new(On::Transaction(tx)))
    }

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

/// SQLite as the shared statements see it.
struct Driver;

impl renkei_store_sql::Driver for Driver {
    type DB = sqlx::Sqlite;
    const DIALECT: Dialect = Dialect::Sqlite;

    fn store_error(error: sqlx::Error) -> StoreError {
        map_error(error)
    }

    fn rows_affected(result: &<sqlx::Sqlite as sqlx::Database>::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Where the shared statements run: the pool, one connection, or a transaction.
type On<'a> = renkei_store_sql::On<'a, Driver>;

#[cfg(test)]
mod conformance {
    use renkei_store_sql::SqlStore;

    use super::SqliteStore;

    async fn fresh() -> (SqlStore<SqliteStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("index.sqlite")).await.expect("open store");
        (SqlStore(store), dir)
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
        let store = SqlStore(SqliteStore::open(&path).await.expect("open"));
        let facility = Facility {
            id: FacilityId::new("east").expect("id"),
            name: "East".into(),
            ae_titles: vec![AeTitle::new("CT1").expect("ae")],
        };
        store.add_facility(&facility).await.expect("add");
        store.close().await;
        let reopened = SqlStore(SqliteStore::open(&path).await.expect("reopen"));
        assert_eq!(reopened.facilities().await.expect("list"), vec![facility]);
    }

    /// Writes that never pause would grow the WAL without end; restarting empties it.
    #[tokio::test]
    async fn a_restarted_wal_is_empty() {
        let (store, dir) = fresh().await;
        let wal = dir.path().join("index.sqlite-wal");
        sqlx::query("CREATE TABLE filler (x BLOB)").execute(&store.pool).await.expect("create");
        sqlx::query("INSERT INTO filler VALUES (randomblob(1000000))").execute(&store.pool).await.expect("insert");
        assert!(std::fs::metadata(&wal).expect("wal").len() > 1_000_000);
        super::restart_wal(&store.pool).await.expect("restart");
        assert_eq!(std::fs::metadata(&wal).expect("wal").len(), 0);
    }
}

#[cfg(test)]
mod writers {
    use renkei_domain::model::{BlobHash, Facility, IndexedAttributes, NewInstance};
    use renkei_domain::query::{Attribute, Query, QueryLevel};
    use renkei_domain::{AeTitle, FacilityId, Uid};
    use renkei_store::{FacilityStore, InstanceStore};
    use renkei_store_sql::SqlStore;

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
            dose_source: false,
        }
    }

    async fn patient_name(store: &SqlStore<SqliteStore>) -> String {
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
        let server = SqlStore(SqliteStore::open(&path).await.expect("open"));
        let import = SqlStore(SqliteStore::open(&path).await.expect("open again"));
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
