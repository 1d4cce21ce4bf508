//! The command line. Administrative commands work on the data directory directly, so they
//! work whether or not a server is running; a running server sees their changes at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use renkei_domain::model::{Facility, Node, Principal, Role, StoreOutcome};
use renkei_domain::mpi::{Actor, RecordId};
use renkei_domain::sharing::{Audience, Consent, Grant, NewPublication, PatientRef, Published};
use renkei_domain::tier::{AgeBucket, Tier, end_of_day_in_japan};
use renkei_domain::{AeTitle, FacilityId};
use renkei_service::{Archive, Decision, ImportOutcome, LifecyclePolicy, LifecycleRun, MatcherRun, PersonView};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Overrides};
use crate::server::{self, Opened};

/// Renkei: a regional medical data hub.
#[derive(Debug, Parser)]
#[command(name = "renkei", version, about)]
pub struct Cli {
    /// TOML configuration file (also RENKEI_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory: index and blobs (default ./renkei-data; also RENKEI_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL index shared by several nodes, postgres://… (default: SQLite in the data
    /// directory; also RENKEI_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: DICOM (DIMSE) and HTTP listeners.
    Serve(ServeArgs),
    /// Manage facilities.
    #[command(subcommand)]
    Facility(FacilityCommand),
    /// Manage DICOM nodes (C-MOVE destinations).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Import DICOM files and folders (recursively) into a facility.
    Import(ImportArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Counts per facility.
    Stats,
    /// The storage lifecycle: move old studies to the cold tier, and see where bytes are.
    #[command(subcommand)]
    Lifecycle(LifecycleCommand),
    /// Reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// The master patient index (名寄せ): patient records linked into persons across
    /// facilities.
    #[command(subcommand)]
    Mpi(MpiCommand),
    /// Sharing studies between facilities (公開設定): publications with the patient's
    /// consent, break-glass access, and the audit of every cross-facility access.
    #[command(subcommand)]
    Share(ShareCommand),
    /// Radiation dose management (線量管理): dose reports read from RDSRs and CT images.
    #[command(subcommand)]
    Dose(DoseCommand),
}

#[derive(Debug, Subcommand)]
enum DoseCommand {
    /// Read every queued dose object now, settled or not (`serve` does this every second).
    Extract,
    /// Forget every dose report and exam read so far and read every stored dose object
    /// again (after an upgrade of the extraction, or objects stored by an older version).
    Reindex,
    /// The latest exams, newest first, as tab-separated values.
    Exams {
        #[arg(long)]
        facility: Option<String>,
        /// ct, projection, mammography or nm.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum ShareCommand {
    /// Publish a patient's study (or, without --study, every study of the patient, later
    /// ones too) to other facilities. They see it once their own patient is linked to the
    /// same person, under their own patient ID and name.
    Publish {
        /// The publishing facility's patient, as FACILITY/PATIENT_ID.
        patient: String,
        #[arg(long, default_value = "")]
        issuer: String,
        /// One study; otherwise every study of the patient.
        #[arg(long)]
        study: Option<String>,
        /// Facility ids, comma-separated, or `group` for every other facility.
        #[arg(long)]
        to: String,
        /// The last day it is visible, YYYY-MM-DD (to its end, Japan time).
        #[arg(long)]
        until: String,
        /// Who consented: the patient, or a proxy and in what capacity.
        #[arg(long)]
        consent_by: String,
        /// What the consent covers, as on the consent form.
        #[arg(long)]
        consent_scope: String,
        /// Who publishes (default: the operating-system user).
        #[arg(long)]
        by: Option<String>,
    },
    /// Publications, newest first, with whether each is current.
    List {
        /// Only this facility's.
        #[arg(long)]
        facility: Option<String>,
    },
    /// Revoke a publication: access through it ends at once.
    Revoke {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: Option<String>,
    },
    /// Open an emergency access for a facility's patient (FACILITY/PATIENT_ID): the facility
    /// sees every study of the linked person at every facility, flagged for review.
    BreakGlass {
        patient: String,
        #[arg(long, default_value = "")]
        issuer: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = renkei_service::BREAK_GLASS_DEFAULT_HOURS)]
        hours: u32,
        #[arg(long)]
        by: Option<String>,
    },
    /// End a break-glass access now.
    Close {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: Option<String>,
    },
    /// Break-glass accesses no administrator has reviewed yet.
    Flagged,
    /// Mark a break-glass access reviewed.
    Review {
        id: i64,
        #[arg(long)]
        note: String,
        #[arg(long)]
        by: Option<String>,
    },
    /// Cross-facility accesses of the last days, newest first.
    Audit {
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum MpiCommand {
    /// Match new and changed patients now (`serve` does this every second).
    Match,
    /// Estimate the matching model from every patient record, link them all again, and
    /// write what changed. People's decisions (manual links, "not the same") stand.
    Rebuild,
    /// Score the links against a known truth: a TSV with a header and the columns
    /// facility, patient_id, person (as bench/mpi_population.py writes). Prints precision,
    /// recall and F1 over pairs and clusters at both thresholds, and the review load.
    Evaluate { truth: PathBuf },
    /// Records, pending records, persons, persons across facilities, review candidates.
    Status,
    /// A patient's person: every linked record, and the history of their links.
    Show {
        facility: String,
        patient_id: String,
        /// Issuer of Patient ID, if the facility uses one.
        #[arg(long, default_value = "")]
        issuer: String,
    },
    /// Record a decision about two patients, each given as FACILITY/PATIENT_ID: `same`
    /// (accept or link), `different` (reject or unlink: never linked again, whatever the
    /// score), or `withdraw` (take back people's decisions; the scores decide again).
    Decide {
        #[arg(value_enum)]
        decision: DecisionArg,
        a: String,
        b: String,
        /// Why: kept with the decision.
        #[arg(long)]
        reason: String,
        /// Who decided (default: the operating-system user).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DecisionArg {
    Same,
    Different,
    Withdraw,
}

#[derive(Debug, Subcommand)]
enum LifecycleCommand {
    /// Apply the lifecycle policy now: copy, verify, then free the hot copy of every object
    /// it sends cold. Safe to interrupt and to run again; one node runs it at a time.
    Run,
    /// Instances and bytes per facility and tier.
    Status,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Share of retrievals by study age (<1 y, 1–3 y, 3–5 y, >5 y) per facility: what to
    /// choose the cold threshold by.
    Access {
        /// Only retrievals of the last this many days (default: all).
        #[arg(long)]
        days: Option<u32>,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// HTTP listen address (default 127.0.0.1:8080).
    #[arg(long)]
    http_listen: Option<String>,
    /// DICOM listen address (default 127.0.0.1:11112).
    #[arg(long)]
    dicom_listen: Option<String>,
    /// This archive's AE title (default RENKEI).
    #[arg(long)]
    ae_title: Option<String>,
}

#[derive(Debug, Subcommand)]
enum FacilityCommand {
    /// Add a facility with the calling AE titles of its modalities and PACS.
    Add {
        id: String,
        #[arg(long)]
        name: String,
        /// A calling AE title of the facility; repeat for each.
        #[arg(long = "ae", required = true)]
        ae_titles: Vec<String>,
    },
    /// List facilities and their AE titles.
    List,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Add (or update) a DICOM node of a facility.
    Add {
        ae_title: String,
        #[arg(long)]
        facility: String,
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once, on the last line, and stored only as a hash.
    Create {
        /// The facility whose data the token reaches.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        facility: Option<String>,
        /// What the token may do at its facility.
        #[arg(long, value_enum, default_value = "viewer", conflicts_with = "admin")]
        role: FacilityRole,
        /// An administrator's token, for every facility.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FacilityRole {
    Viewer,
    Uploader,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long)]
    facility: String,
    /// Files imported at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
}

impl Cli {
    /// Runs the command. `env` is the process environment, read once by `main`.
    pub async fn run(self, env: HashMap<String, String>) -> anyhow::Result<()> {
        let config_path = self.config.clone().or_else(|| env.get("RENKEI_CONFIG").map(PathBuf::from));
        let file = match &config_path {
            Some(path) => {
                Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)
            }
            None => None,
        };
        let mut overrides = Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Default::default()
        };
        if let Command::Serve(args) = &self.command {
            overrides.http_listen = args.http_listen.clone();
            overrides.dicom_listen = args.dicom_listen.clone();
            overrides.ae_title = args.ae_title.clone();
        }
        let config = Config::load(file.as_deref(), &env, &overrides)?;
        match self.command {
            Command::Serve(_) => {
                let shutdown = CancellationToken::new();
                server::cancel_on_signals(shutdown.clone());
                server::serve(config, shutdown).await
            }
            Command::Facility(command) => with_archive(&config, |archive| facility(archive, command)).await,
            Command::Node(command) => with_archive(&config, |archive| node(archive, command)).await,
            Command::Import(args) => with_archive(&config, |archive| import(archive, args)).await,
            Command::Stats => with_archive(&config, stats).await,
            Command::Token(command) => with_archive(&config, |archive| token(archive, command)).await,
            Command::Lifecycle(LifecycleCommand::Run) => {
                let policy = config.lifecycle.policy();
                with_archive(&config, |archive| lifecycle_run(archive, policy)).await
            }
            Command::Lifecycle(LifecycleCommand::Status) => with_archive(&config, lifecycle_status).await,
            Command::Report(ReportCommand::Access { days }) => {
                with_archive(&config, |archive| access_report(archive, days)).await
            }
            Command::Mpi(command) => with_archive(&config, |archive| mpi(archive, command)).await,
            Command::Share(command) => with_archive(&config, |archive| share(archive, command)).await,
            Command::Dose(command) => with_archive(&config, |archive| dose(archive, command)).await,
        }
    }
}

async fn with_archive<F, Fut>(config: &Config, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Archive>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let opened = Opened::open(config).await?;
    let result = body(opened.archive.clone()).await;
    opened.close().await;
    result
}

async fn facility(archive: Arc<Archive>, command: FacilityCommand) -> anyhow::Result<()> {
    match command {
        FacilityCommand::Add { id, name, ae_titles } => {
            let id = FacilityId::new(&id)?;
            let mut titles = Vec::new();
            for ae in &ae_titles {
                titles.push(AeTitle::new(ae).with_context(|| format!("invalid AE title {ae:?}"))?);
            }
            archive.add_facility(&Facility { id: id.clone(), name, ae_titles: titles }).await?;
            println!("added facility {id} with AE titles {}", ae_titles.join(", "));
        }
        FacilityCommand::List => {
            for facility in archive.facilities().await? {
                let titles: Vec<&str> = facility.ae_titles.iter().map(AeTitle::as_str).collect();
                println!("{}\t{}\t{}", facility.id, facility.name, titles.join(","));
            }
        }
    }
    Ok(())
}

async fn node(archive: Arc<Archive>, command: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Add { ae_title, facility, host, port } = command;
    let node = Node {
        ae_title: AeTitle::new(&ae_title).with_context(|| format!("invalid AE title {ae_title:?}"))?,
        facility: FacilityId::new(&facility)?,
        host,
        port,
    };
    archive.put_node(&node).await?;
    println!("node {} of facility {} at {}:{}", node.ae_title, node.facility, node.host, node.port);
    Ok(())
}

async fn token(archive: Arc<Archive>, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create { facility, role, admin } = command;
    let principal = match (admin, facility) {
        (true, _) => Principal { facility: None, role: Role::Admin },
        (false, Some(facility)) => {
            let role = match role {
                FacilityRole::Viewer => Role::Viewer,
                FacilityRole::Uploader => Role::Uploader,
            };
            Principal { facility: Some(FacilityId::new(&facility)?), role }
        }
        (false, None) => bail!("say --facility ID or --admin"),
    };
    let token = archive.create_token(&principal).await?;
    let scope = principal.facility.as_ref().map_or("every facility".to_owned(), |f| format!("facility {f}"));
    println!("{} token for {scope}; it is shown only now:", principal.role.as_str());
    println!("{token}");
    Ok(())
}

async fn stats(archive: Arc<Archive>) -> anyhow::Result<()> {
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>10} {:>15}  name",
        "facility", "patients", "studies", "series", "instances", "bytes"
    );
    for s in archive.stats().await? {
        println!(
            "{:<16} {:>9} {:>9} {:>9} {:>10} {:>15}  {}",
            s.facility, s.patients, s.studies, s.series, s.instances, s.bytes, s.name
        );
    }
    Ok(())
}

async fn lifecycle_run(archive: Arc<Archive>, policy: LifecyclePolicy) -> anyhow::Result<()> {
    match archive.run_lifecycle(&policy).await {
        Ok(LifecycleRun::Done(report)) => {
            println!("moved {} objects ({} bytes) to the cold tier", report.moved, report.bytes);
            if report.missing > 0 {
                println!("{} objects listed hot have no hot copy; see the server log", report.missing);
            }
            Ok(())
        }
        Ok(LifecycleRun::Busy) => bail!("another node is running the lifecycle now; try again later"),
        Err(failed) => {
            println!("moved {} objects ({} bytes) before stopping", failed.report.moved, failed.report.bytes);
            Err(failed.into())
        }
    }
}

async fn lifecycle_status(archive: Arc<Archive>) -> anyhow::Result<()> {
    println!("{:<16} {:<5} {:>10} {:>15}", "facility", "tier", "instances", "bytes");
    for s in archive.tier_stats().await? {
        let tier = match s.tier {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        };
        println!("{:<16} {:<5} {:>10} {:>15}", s.facility, tier, s.instances, s.bytes);
    }
    Ok(())
}

async fn access_report(archive: Arc<Archive>, days: Option<u32>) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let since = days.map_or(0, |days| now - i64::from(days) * 86_400);
    let counts = archive.access_report(since).await?;
    let mut header = format!("{:<16} {:>10}", "facility", "retrievals");
    for bucket in AgeBucket::ALL {
        header.push_str(&format!(" {:>8}", bucket.label()));
    }
    println!("{header}");
    let mut facilities: Vec<&str> = counts.iter().map(|c| c.facility.as_str()).collect();
    facilities.dedup();
    for facility in facilities {
        let of = |bucket: AgeBucket| {
            counts.iter().find(|c| c.facility == facility && c.bucket == bucket).map_or(0, |c| c.retrievals)
        };
        let total: u64 = AgeBucket::ALL.into_iter().map(of).sum();
        let mut line = format!("{facility:<16} {total:>10}");
        for bucket in AgeBucket::ALL {
            line.push_str(&format!(" {:>7.1}%", 100.0 * of(bucket) as f64 / total.max(1) as f64));
        }
        println!("{line}");
    }
    Ok(())
}

/// Every regular file under `paths`, recursively, in a stable order.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn visit(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
            entries.sort();
            for entry in entries {
                visit(&entry, files)?;
            }
        } else if metadata.is_file() {
            files.push(path.to_path_buf());
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        visit(path, &mut files)?;
    }
    Ok(files)
}

#[derive(Default)]
struct ImportSummary {
    stored: usize,
    new_versions: usize,
    duplicates: usize,
    not_dicom: usize,
    failed: Vec<(PathBuf, String)>,
}

async fn import(archive: Arc<Archive>, args: ImportArgs) -> anyhow::Result<()> {
    let facility = FacilityId::new(&args.facility)?;
    if !archive.facilities().await?.iter().any(|f| f.id == facility) {
        bail!("facility {facility} does not exist; add it with `renkei facility add`");
    }
    let files = collect_files(&args.paths)?;
    let progress = indicatif::ProgressBar::new(files.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut summary = ImportSummary::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = files.into_iter();
    loop {
        while tasks.len() < args.parallel.max(1) {
            let Some(path) = queue.next() else { break };
            let (archive, facility) = (archive.clone(), facility.clone());
            tasks.spawn(async move {
                let outcome = archive.import_file(&facility, &path).await;
                (path, outcome)
            });
        }
        let Some(joined) = tasks.join_next().await else { break };
        let (path, outcome) = joined.context("import task failed")?;
        match outcome? {
            ImportOutcome::Stored(StoreOutcome::Created) => summary.stored += 1,
            ImportOutcome::Stored(StoreOutcome::NewVersion) => summary.new_versions += 1,
            ImportOutcome::Stored(StoreOutcome::Duplicate) => summary.duplicates += 1,
            ImportOutcome::NotDicom => summary.not_dicom += 1,
            ImportOutcome::Failed(reason) => summary.failed.push((path, reason)),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!(
        "imported into {facility}: {} stored, {} new versions, {} duplicates, {} not DICOM, {} failed",
        summary.stored,
        summary.new_versions,
        summary.duplicates,
        summary.not_dicom,
        summary.failed.len()
    );
    for (path, reason) in &summary.failed {
        println!("failed: {}: {reason}", path.display());
    }
    Ok(())
}

async fn dose(archive: Arc<Archive>, command: DoseCommand) -> anyhow::Result<()> {
    let extract = |archive: Arc<Archive>| async move {
        match archive.extract_dose(renkei_service::ExtractorPace::NOW).await? {
            renkei_service::ExtractorRun::Done(run) => {
                println!("read {} dose objects: {} dose reports, {} exams written", run.read, run.reports, run.exams);
                Ok(())
            }
            renkei_service::ExtractorRun::Busy => bail!("another node is reading dose objects now; try again shortly"),
            renkei_service::ExtractorRun::Deferred => bail!("this node is storing objects; try again shortly"),
        }
    };
    match command {
        DoseCommand::Extract => extract(archive).await,
        DoseCommand::Reindex => {
            println!("queued {} stored objects", archive.reindex_dose().await?);
            extract(archive).await
        }
        DoseCommand::Exams { facility, kind, limit } => {
            let filter = renkei_domain::dose::ExamFilter {
                facility: facility.as_deref().map(FacilityId::new).transpose()?,
                kind: kind
                    .as_deref()
                    .map(|k| renkei_domain::dose::DoseKind::parse(k).ok_or_else(|| anyhow::anyhow!("unknown kind {k}")))
                    .transpose()?,
                limit,
                ..Default::default()
            };
            println!(
                "facility\tstudy\tkind\tsource\tdevice\tdescription\tcategory\tctdivol\tdlp\tdap\tdose_rp\tactivity"
            );
            let number = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
            for exam in archive.exams(&filter).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    exam.facility,
                    exam.study_uid,
                    exam.kind.as_str(),
                    exam.source.as_str(),
                    exam.device.label(),
                    exam.description,
                    exam.category.as_deref().unwrap_or(""),
                    number(exam.ctdivol),
                    number(exam.dlp),
                    number(exam.dap),
                    number(exam.dose_rp),
                    number(exam.activity),
                );
            }
            Ok(())
        }
    }
}

async fn mpi(archive: Arc<Archive>, command: MpiCommand) -> anyhow::Result<()> {
    match command {
        MpiCommand::Match => match archive.match_pending().await? {
            MatcherRun::Done(mut report) => {
                println!(
                    "matched {} records: {} automatic links, {} candidates for review",
                    report.matched, report.auto_links, report.candidates
                );
                report.durations.sort();
                let at = |q: f64| report.durations[((report.durations.len() - 1) as f64 * q).round() as usize];
                if !report.durations.is_empty() {
                    println!(
                        "per record: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                        at(0.5).as_secs_f64() * 1e3,
                        at(0.99).as_secs_f64() * 1e3,
                        at(1.0).as_secs_f64() * 1e3
                    );
                }
            }
            MatcherRun::Busy => bail!("another node is matching now; try again shortly"),
        },
        MpiCommand::Rebuild => {
            let started = std::time::Instant::now();
            let report = archive.rebuild_mpi().await?;
            let model = if report.trained { "estimated from these records" } else { "shipped (too few records)" };
            println!(
                "linked {} records into {} persons in {:.1} s: {} links added, {} retired; model {model}",
                report.records,
                report.persons,
                started.elapsed().as_secs_f64(),
                report.links_added,
                report.links_retired
            );
        }
        MpiCommand::Evaluate { truth } => {
            let text = std::fs::read_to_string(&truth).with_context(|| format!("cannot read {}", truth.display()))?;
            let mut rows = Vec::new();
            for (number, line) in text.lines().enumerate().skip(1) {
                let fields: Vec<&str> = line.split('\t').collect();
                let [facility, patient_id, person, ..] = fields[..] else {
                    bail!("line {}: need facility, patient_id and person", number + 1)
                };
                rows.push((FacilityId::new(facility)?, patient_id.to_owned(), person.to_owned()));
            }
            let (report, missing) = archive.evaluate_mpi(&rows).await?;
            let model = archive.mpi_model().await?;
            println!("records {}  true pairs {}  missing from the index {missing}", report.records, report.true_pairs);
            println!("{:<34} {:>10} {:>10} {:>8} {:>8} {:>8}", "", "predicted", "correct", "precision", "recall", "F1");
            let thresholds = model.thresholds;
            for (label, m) in [
                (format!("pairs, auto-link (p ≥ {})", thresholds.auto_link), report.pairs_auto),
                (format!("pairs, with review (p ≥ {})", thresholds.review), report.pairs_review),
                ("clusters, auto-link".to_owned(), report.clusters_auto),
                ("clusters, all review accepted".to_owned(), report.clusters_review),
            ] {
                println!(
                    "{label:<34} {:>10} {:>10} {:>9.4} {:>8.4} {:>8.4}",
                    m.predicted, m.true_positives, m.precision, m.recall, m.f1
                );
            }
            println!(
                "review: {} pairs, {} tasks, {:.1} tasks per 1,000 records",
                report.review_pairs, report.review_tasks, report.review_per_1000_records
            );
        }
        MpiCommand::Show { facility, patient_id, issuer } => {
            let record = archive.mpi_record(&FacilityId::new(&facility)?, &patient_id, &issuer).await?;
            print_person(&archive.person_view(&record).await?);
        }
        MpiCommand::Decide { decision, a, b, reason, by } => {
            let ((fa, pa), (fb, pb)) = (facility_patient(&a)?, facility_patient(&b)?);
            let (a, b) = (archive.mpi_record(&fa, &pa, "").await?, archive.mpi_record(&fb, &pb, "").await?);
            let who = operator(by);
            let decision = match decision {
                DecisionArg::Same => Decision::Same,
                DecisionArg::Different => Decision::Different,
                DecisionArg::Withdraw => Decision::Withdraw,
            };
            archive.decide(a.id, b.id, decision, Actor { who, why: reason }).await?;
            println!("recorded; the matcher updates the persons within a second (or run `renkei mpi match`)");
        }
        MpiCommand::Status => {
            let stats = archive.mpi_stats().await?;
            println!("records                    {}", stats.records);
            println!("pending                    {}", stats.pending);
            println!("persons                    {}", stats.persons);
            println!("persons across facilities  {}", stats.persons_across_facilities);
            println!("review candidates          {}", stats.candidates);
        }
    }
    Ok(())
}

/// A patient given as FACILITY/PATIENT_ID.
fn facility_patient(given: &str) -> anyhow::Result<(FacilityId, String)> {
    let (facility, patient_id) = given.split_once('/').context("give a patient as FACILITY/PATIENT_ID")?;
    Ok((FacilityId::new(facility)?, patient_id.to_owned()))
}

/// Who runs a command: as given, or the operating-system user.
fn operator(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".into())
}

async fn share(archive: Arc<Archive>, command: ShareCommand) -> anyhow::Result<()> {
    match command {
        ShareCommand::Publish { patient, issuer, study, to, until, consent_by, consent_scope, by } => {
            let (facility, patient_id) = facility_patient(&patient)?;
            let audience = if to == "group" {
                Audience::Group
            } else {
                Audience::Facilities(to.split(',').map(|f| FacilityId::new(f.trim())).collect::<Result<_, _>>()?)
            };
            let ends_at = end_of_day_in_japan(&until).context("--until is a date, YYYY-MM-DD")?;
            let now = renkei_service::now_unix();
            let publication = NewPublication {
                patient: PatientRef { facility, patient_id, issuer },
                published: study.map_or(Published::Patient, |study_uid| Published::Study { study_uid }),
                audience,
                starts_at: now,
                ends_at,
                consent: Consent { given_by: consent_by, given_at: now, scope: consent_scope },
                created_by: operator(by),
            };
            let published = archive.publish(&publication).await?;
            println!("publication {} recorded", published.id);
        }
        ShareCommand::List { facility } => {
            let facility = facility.as_deref().map(FacilityId::new).transpose()?;
            let now = renkei_service::now_unix();
            for p in archive.publications(facility.as_ref(), 1000).await? {
                let n = &p.publication;
                let what = match &n.published {
                    Published::Study { study_uid } => format!("study {study_uid}"),
                    Published::Patient => "every study".to_owned(),
                };
                let to = match &n.audience {
                    Audience::Group => "the group".to_owned(),
                    Audience::Facilities(ids) => ids.iter().map(FacilityId::as_str).collect::<Vec<_>>().join(","),
                };
                let state = match (&p.revoked, p.is_current(now)) {
                    (Some(r), _) => format!("revoked by {} ({})", r.by.who, r.by.why),
                    (None, true) => "current".to_owned(),
                    (None, false) => "not current".to_owned(),
                };
                println!(
                    "{:>5}  {}/{}  {what} → {to}  until {}  consent: {} ({})  {state}",
                    p.id,
                    n.patient.facility,
                    n.patient.patient_id,
                    renkei_domain::tier::last_day_in_japan(n.ends_at),
                    n.consent.given_by,
                    n.consent.scope
                );
            }
        }
        ShareCommand::Revoke { id, reason, by } => {
            archive.revoke_publication(id, None, &Actor { who: operator(by), why: reason }).await?;
            println!("revoked; access through publication {id} has ended");
        }
        ShareCommand::BreakGlass { patient, issuer, reason, hours, by } => {
            let (facility, patient_id) = facility_patient(&patient)?;
            let by = Actor { who: operator(by), why: reason };
            let opened = archive.break_glass(PatientRef { facility, patient_id, issuer }, &by, hours).await?;
            println!("break-glass access {} open for {hours} h, flagged for review", opened.id);
        }
        ShareCommand::Close { id, reason, by } => {
            archive.close_break_glass(id, None, &Actor { who: operator(by), why: reason }).await?;
            println!("break-glass access {id} closed");
        }
        ShareCommand::Flagged => {
            for b in archive.break_glasses(None, true, 1000).await? {
                let a = &b.access;
                println!(
                    "{:>5}  {}/{}  by {}: {}",
                    b.id, a.patient.facility, a.patient.patient_id, a.opened_by.who, a.opened_by.why
                );
            }
        }
        ShareCommand::Review { id, note, by } => {
            archive.review_break_glass(id, &Actor { who: operator(by), why: note }).await?;
            println!("break-glass access {id} reviewed");
        }
        ShareCommand::Audit { days } => {
            let since = renkei_service::now_unix() - i64::from(days) * 86_400;
            for a in archive.shared_accesses(None, since, 10_000).await? {
                let grant = match a.grant {
                    Grant::Publication(id) => format!("publication {id}"),
                    Grant::BreakGlass(id) => format!("BREAK-GLASS {id}"),
                };
                println!(
                    "{}  {} ← {}  study {}  {}  via {}  ({grant})",
                    a.at,
                    a.facility,
                    a.origin,
                    a.study_uid,
                    a.kind.as_str(),
                    a.via
                );
            }
        }
    }
    Ok(())
}

fn print_person(view: &PersonView) {
    match view.person {
        Some(person) => println!("person {}", person.0),
        None => println!("not matched yet"),
    }
    for r in &view.records {
        println!("  {:<12} {:<16} {:<8} {:<2} {}", r.facility, r.patient_id, r.birth_date, r.sex, r.name);
    }
    let name = |id: RecordId| {
        view.records
            .iter()
            .chain(&view.others)
            .find(|r| r.id == id)
            .map_or_else(|| format!("#{}", id.0), |r| format!("{}/{}", r.facility, r.patient_id))
    };
    println!("links");
    for link in &view.links {
        let weight = link.weight.map(|w| format!(" {w:.1} bits")).unwrap_or_default();
        let mut line = format!(
            "  {:<9} {} – {}{weight}, by {} ({})",
            link.kind.as_str(),
            name(link.a),
            name(link.b),
            link.created_by.who,
            link.created_by.why
        );
        if let Some(retired) = &link.retired {
            line.push_str(&format!("; retired by {} ({})", retired.by.who, retired.by.why));
        }
        println!("{line}");
    }
}
