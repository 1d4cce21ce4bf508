//! The SQLite index backend, Renkei's zero-configuration default.
//!
//! - [`SqliteStore::open`] creates or opens `index.sqlite` in WAL mode with `synchronous=FULL`,
//!   so a committed transaction survives power loss, and runs the migrations.
//! - `facility`: [`FacilityStore`](renkei_store::FacilityStore).
//! - `instance`: [`InstanceStore`](renkei_store::InstanceStore), with per-instance savepoints
//!   inside each group-commit transaction.
//! - `filter`: the tested builder of query SQL.
//! - `token`: [`TokenStore`](renkei_store::TokenStore).
//!
//! Several processes may open the same file (the server and the admin CLI); SQLite's own
//! locking serialises their writes.

mod facility;
mod filter;
mod instance;
mod token;

use std::path::Path;
use std::time::Duration;

use renkei_store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Migrations in order. A database records the highest one applied in `PRAGMA user_version`.
const MIGRATIONS: &[&str] =
    &[include_str!("../migrations/0001_archive.sql"), include_str!("../migrations/0002_tokens.sql")];

/// The SQLite index.
#[derive(Clone)]
pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one connection that writes instances: SQLite has a single writer anyway, and a
    /// connection held for good keeps its page cache warm and costs no pool round trip.
    writer: std::sync::Arc<tokio::sync::Mutex<instance::Writer>>,
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
        let writer = sqlx::ConnectOptions::connect(&options).await.map_err(map_error)?;
        let writer = std::sync::Arc::new(tokio::sync::Mutex::new(instance::Writer::new(writer)));
        let store = Self { pool, writer };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_error)?;
        let applied: i64 = sqlx::query("PRAGMA user_version").fetch_one(&mut *tx).await.map_err(map_error)?.get(0);
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*migration)).execute(&mut *tx).await.map_err(map_error)?;
            let version = index + 1;
            tracing::info!(version, "applied index migration");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {version}")))
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps a sqlx error to a store error: a full disk and constraint conflicts are told apart
/// from everything else.
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
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

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
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
