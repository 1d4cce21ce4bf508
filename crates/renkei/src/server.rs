//! Wiring: open the index and blobs, bind the listeners, serve, shut down in order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use renkei_blob::{Bucket, Tiers};
use renkei_service::{Archive, Stores};
use renkei_store_postgres::PostgresStore;
use renkei_store_sql::SqlStore;
use renkei_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The index: embedded SQLite by default, or a PostgreSQL shared by several nodes.
enum Index {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// The index and blobs, and the archive over them.
pub struct Opened {
    pub archive: Arc<Archive>,
    index: Index,
}

impl Opened {
    /// Opens (creating if needed) the data directory, and the index it names.
    pub async fn open(config: &Config) -> anyhow::Result<Opened> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
        let bucket = |settings: Option<renkei_blob::S3Settings>, tier: &str| -> anyhow::Result<Option<Bucket>> {
            settings.map(|s| Bucket::s3(&s).with_context(|| format!("invalid {tier} tier settings"))).transpose()
        };
        let tiers = Tiers {
            hot: bucket(config.hot.settings("hot")?, "hot")?,
            cold: bucket(config.cold.settings("cold")?, "cold")?,
            recall_budget: config.recall.cache_mib.saturating_mul(1 << 20),
        };
        let blobs = Archive::open_blobs(&config.data_dir, tiers).context("cannot open the blob store")?;
        let (index, stores) = match config.database.postgres_url()? {
            None => {
                let store =
                    SqliteStore::open(&config.data_dir.join("index.sqlite")).await.context("cannot open the index")?;
                (Index::Sqlite(store.clone()), Stores::of(SqlStore(store)))
            }
            Some(url) => {
                let connections = config.database.max_connections.unwrap_or(16);
                let store = PostgresStore::open(&url, connections).await.context("cannot open the PostgreSQL index")?;
                (Index::Postgres(store.clone()), Stores::of(SqlStore(store)))
            }
        };
        let mut archive = Archive::new(stores, blobs, config.recall.prefetch_priors);
        if let Some(thresholds) = config.mpi.thresholds()? {
            archive = archive.with_matching_thresholds(thresholds);
        }
        Ok(Opened { archive: Arc::new(archive), index })
    }

    /// Flushes queued index writes and closes the index.
    pub async fn close(self) {
        self.archive.shutdown().await;
        match self.index {
            Index::Sqlite(store) => store.close().await,
            Index::Postgres(store) => store.close().await,
        }
    }
}

/// Runs the hub until `shutdown` fires: stop accepting, let associations and requests
/// drain, flush the group committer, close the index.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let opened = Opened::open(&config).await?;
    let http = TcpListener::bind(&config.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
    let dicom = TcpListener::bind(&config.dicom_listen)
        .await
        .with_context(|| format!("cannot listen for DICOM on {}", config.dicom_listen))?;
    let http_addr = http.local_addr()?;
    let dicom_addr = dicom.local_addr()?;

    let state = renkei_api::AppState { archive: opened.archive.clone() };
    let http_task = tokio::spawn(renkei_api::serve(http, state, shutdown.clone().cancelled_owned()));
    let scp_config = renkei_dimse::ScpConfig {
        ae_title: config.ae_title.clone(),
        max_pdu_length: config.dicom.max_pdu_length,
        idle_timeout: Duration::from_secs(config.dicom.idle_timeout_secs),
        drain_timeout: Duration::from_secs(config.dicom.drain_timeout_secs),
    };
    let dicom_task = tokio::spawn(renkei_dimse::serve(dicom, opened.archive.clone(), scp_config, shutdown.clone()));
    let mover = (config.cold.is_set() && config.lifecycle.interval_minutes > 0).then(|| {
        let every = Duration::from_secs(config.lifecycle.interval_minutes * 60);
        tokio::spawn(move_periodically(opened.archive.clone(), config.lifecycle.policy(), every, shutdown.clone()))
    });

    let matcher = (config.mpi.match_every_ms > 0).then(|| {
        let every = Duration::from_millis(config.mpi.match_every_ms);
        tokio::spawn(match_periodically(opened.archive.clone(), every, shutdown.clone()))
    });

    let extractor = (config.dose.extract_every_ms > 0).then(|| {
        let every = Duration::from_millis(config.dose.extract_every_ms);
        tokio::spawn(extract_dose_periodically(opened.archive.clone(), every, config.dose.pace(), shutdown.clone()))
    });

    tracing::info!(http = %http_addr, dicom = %dicom_addr, ae_title = %config.ae_title, "renkei ready");
    // The readiness line that scripts and tests wait for, with the bound ports.
    println!("renkei ready http={http_addr} dicom={dicom_addr} ae_title={}", config.ae_title);

    let (http_result, dicom_result) = tokio::join!(http_task, dicom_task);
    for task in [mover, matcher, extractor].into_iter().flatten() {
        let _ = task.await;
    }
    if let Ok(Err(error)) = http_result {
        tracing::error!(%error, "http server failed");
    }
    if let Err(error) = dicom_result {
        tracing::error!(%error, "dicom server task failed");
    }
    opened.close().await;
    tracing::info!("renkei stopped");
    Ok(())
}

/// Runs the lifecycle mover every `every` until shutdown (first a minute after start). A run
/// that another node holds is skipped; one cut short by shutdown resumes next time.
async fn move_periodically(
    archive: Arc<Archive>,
    policy: renkei_service::LifecyclePolicy,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60).min(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next += every;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            run = archive.run_lifecycle(&policy) => match run {
                Ok(renkei_service::LifecycleRun::Done(report)) if report.moved > 0 => {
                    tracing::info!(moved = report.moved, bytes = report.bytes, "lifecycle run done");
                }
                Ok(_) => {}
                Err(failed) => tracing::warn!(error = %failed, "lifecycle run stopped; it resumes next time"),
            },
        }
    }
}

/// Runs `job` every `every` until shutdown; a run that shutdown cuts short is dropped.
async fn periodically<F, Fut>(every: Duration, shutdown: CancellationToken, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = job() => {}
        }
    }
}

/// Matches new and changed patients every `every` until shutdown, on whichever node holds
/// the matcher's lease.
async fn match_periodically(archive: Arc<Archive>, every: Duration, shutdown: CancellationToken) {
    periodically(every, shutdown, || async {
        match archive.match_pending().await {
            Ok(renkei_service::MatcherRun::Done(report)) if report.matched > 0 => {
                tracing::info!(
                    matched = report.matched,
                    auto_links = report.auto_links,
                    candidates = report.candidates,
                    "patients matched"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "matching stopped; it resumes next time"),
        }
    })
    .await
}

/// Reads newly stored dose objects every `every` until shutdown, on whichever node holds
/// the extractor's lease.
async fn extract_dose_periodically(
    archive: Arc<Archive>,
    every: Duration,
    pace: renkei_service::ExtractorPace,
    shutdown: CancellationToken,
) {
    periodically(every, shutdown, || async {
        match archive.extract_dose(pace).await {
            Ok(renkei_service::ExtractorRun::Done(run)) if run.read > 0 => {
                tracing::info!(read = run.read, reports = run.reports, exams = run.exams, "dose objects read");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "dose extraction stopped; it resumes next time"),
        }
    })
    .await
}

/// Fires `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                return;
            }
        };
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = interrupt.await;
        tracing::info!("shutting down");
        token.cancel();
    });
}
