//! `renkei-testkit corpus DIR`: writes the synthetic corpus and prints its manifest (TSV).
//! `renkei-testkit send …`: the benchmark SCU. It builds the instances in memory first, then
//! sends them over parallel associations and prints one JSON line of measurements.
//! `renkei-testkit stow …`: the same for STOW-RS, one instance per request from Part-10
//! files, over parallel keep-alive connections.
//! `renkei-testkit link POPULATION.tsv`: the matching engine alone on a synthetic population
//! (`bench/mpi_population.py`): trains, links and prints timings and quality as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use renkei_dimse::scu::Scu;
use renkei_store_sql::SqlStore;
use renkei_testkit::exams::ExamSink;
use renkei_testkit::generate::{CT_IMAGE, Spec, ct_slice, dataset, index_instance, uid};

#[derive(Parser)]
#[command(name = "renkei-testkit", about = "Synthetic DICOM and the benchmark SCU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record each line of a synthetic population as a patient (one instance, no blob) of
    /// its facility, creating facilities f01… as needed; for the matching benchmark.
    FillPatients {
        population: PathBuf,
        /// The data directory whose SQLite index to fill…
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// …or a PostgreSQL index (which wins when both are given).
        #[arg(long)]
        database_url: Option<String>,
        /// The first line to record (0: the first after the header).
        #[arg(long, default_value_t = 0)]
        from: usize,
        /// How many lines (default: all the rest).
        #[arg(long)]
        count: Option<usize>,
    },
    /// Train and link a synthetic population in memory; print timings and quality as JSON.
    Link {
        /// A population from bench/mpi_population.py (facility, patient_id, person, name,
        /// birth_date, sex).
        population: PathBuf,
        /// Also write the trained model (JSON) here.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Write every pair in the review band here (TSV, for inspection).
        #[arg(long)]
        review: Option<PathBuf>,
        /// Also evaluate a grid of thresholds (auto-link × review) and print one JSON line each.
        #[arg(long)]
        sweep: bool,
    },
    /// Write the multi-facility corpus under DIR and print its manifest.
    Corpus { dir: PathBuf },
    /// Write one CT slice as a Part-10 file.
    Ct {
        path: PathBuf,
        #[arg(long, default_value_t = 512)]
        size: u16,
        #[arg(long, default_value_t = 0)]
        n: u64,
    },
    /// Send synthetic CT slices with C-STORE and measure.
    Send {
        /// host:port of the SCP.
        #[arg(long)]
        address: String,
        #[arg(long, default_value = "RENKEI")]
        called: String,
        #[arg(long, default_value = "BENCH")]
        calling: String,
        #[arg(long, default_value_t = 1)]
        associations: usize,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Slice size in pixels per side: 512 gives 512 KiB of pixel data, 256 gives 128 KiB.
        #[arg(long, default_value_t = 512)]
        size: u16,
        /// Distinguishes the UIDs of one run from another's.
        #[arg(long, default_value_t = 1)]
        run: u64,
        /// Send small slices in a benchmark index layout (many patients, studies and dates;
        /// see `generate::index_instance`) instead of one study of `--size` slices.
        #[arg(long)]
        index: bool,
        /// Send CT dose reports (RDSRs, one study each; see `dose::bench_rdsr`) instead.
        #[arg(long, conflicts_with = "index")]
        dose: bool,
    },
    /// Write synthetic dose exams (and their studies) into an index, through the real store,
    /// and print one JSON line with the rate: `count` exams over `facilities` facilities,
    /// adult CT and IVR categories, three years. For the dose benchmark view.
    FillExams {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 34)]
        facilities: u64,
        #[arg(long)]
        count: u64,
    },
    /// Record synthetic index rows (no blobs) for facility `bench`, straight through the
    /// store, and print one JSON line with the rate. For the scale benchmark.
    FillIndex {
        /// The data directory whose SQLite index to fill…
        #[arg(long, conflicts_with = "database_url")]
        data_dir: Option<PathBuf>,
        /// …or a PostgreSQL index.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "bench")]
        facility: String,
        /// The layout's namespace (the `--run` of `send --index`).
        #[arg(long, default_value_t = 1)]
        run: u64,
        /// The first instance number.
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long)]
        count: u64,
    },
    /// POST Part-10 files to a STOW-RS endpoint, one per request, and measure.
    Stow {
        /// The studies URL, for example http://127.0.0.1:8080/dicom-web/studies.
        #[arg(long)]
        url: String,
        /// A bearer token, if the server wants one.
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// The files to send.
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Corpus { dir } => {
            let files = renkei_testkit::corpus::write(&dir).context("writing corpus")?;
            println!(
                "facility\tpath\tpatient_id\tstudy_uid\tseries_uid\tsop_instance_uid\tsop_class_uid\ttransfer_syntax\tmodality"
            );
            for f in files {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    f.facility,
                    f.path.display(),
                    f.patient_id,
                    f.study_uid,
                    f.series_uid,
                    f.sop_instance_uid,
                    f.sop_class_uid,
                    f.transfer_syntax,
                    f.modality
                );
            }
            Ok(())
        }
        Command::Ct { path, size, n } => {
            let spec = ct_slice(size, n);
            let bytes = renkei_testkit::generate::part10(
                &dataset(&spec),
                CT_IMAGE,
                &spec.sop_instance_uid,
                &spec.transfer_syntax,
            );
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
        }
        Command::Link { population, model, review, sweep } => link_population(&population, model, review, sweep),
        Command::FillPatients { population, data_dir, database_url, from, count } => {
            let text = std::fs::read_to_string(&population)?;
            let people = renkei_testkit::fill::read_population(&text)?;
            let end = count.map_or(people.len(), |c| (from + c).min(people.len()));
            let people = &people[from.min(end)..end];
            let index = Index::open(data_dir, database_url).await?;
            let store = index.store.as_ref();
            let mut facilities: Vec<&str> = people.iter().map(|p| p.facility.as_str()).collect();
            facilities.sort();
            facilities.dedup();
            let existing = store.facilities().await?;
            for id in facilities {
                let id = renkei_domain::FacilityId::new(id)?;
                if !existing.iter().any(|f| f.id == id) {
                    let ae = renkei_domain::AeTitle::new(&format!("SCU_{}", id.as_str()))?;
                    let facility = renkei_domain::model::Facility { name: id.as_str().into(), id, ae_titles: vec![ae] };
                    store.add_facility(&facility).await?;
                }
            }
            let took = renkei_testkit::fill::fill_patients(store, people).await?;
            index.close().await;
            let rate = people.len() as f64 / took.as_secs_f64();
            println!("{{\"count\":{},\"seconds\":{:.1},\"rows_per_sec\":{rate:.0}}}", people.len(), took.as_secs_f64());
            Ok(())
        }
        Command::FillIndex { data_dir, database_url, facility, run, start, count } => {
            let facility = renkei_domain::FacilityId::new(&facility)?;
            let index = Index::open(data_dir, database_url).await?;
            let took = renkei_testkit::fill::fill(index.store.as_ref(), &facility, run, start, count).await?;
            index.close().await;
            let rate = count as f64 / took.as_secs_f64();
            println!("{{\"count\":{count},\"seconds\":{:.1},\"rows_per_sec\":{rate:.0}}}", took.as_secs_f64());
            Ok(())
        }
        Command::FillExams { data_dir, database_url, facilities, count } => {
            let index = Index::open(data_dir, database_url).await?;
            let took = renkei_testkit::exams::fill_exams(index.store.as_ref(), facilities, count).await?;
            index.close().await;
            let rate = count as f64 / took.as_secs_f64();
            println!("{{\"count\":{count},\"seconds\":{:.1},\"exams_per_sec\":{rate:.0}}}", took.as_secs_f64());
            Ok(())
        }
        Command::Send { address, called, calling, associations, count, size, run, index, dose } => {
            let (sop_class, instances) = if dose {
                (renkei_testkit::dose::RDSR, (0..count).map(|n| renkei_testkit::dose::bench_rdsr(run, n)).collect())
            } else {
                let specs = (0..count).map(|n| if index { index_instance(run, n) } else { bench_slice(size, run, n) });
                (CT_IMAGE, specs.map(|spec| (spec.sop_instance_uid.clone(), dataset(&spec))).collect())
            };
            send(&address, &called, &calling, associations.max(1), sop_class, instances).await
        }
        Command::Stow { url, token, clients, files } => {
            let bodies = files.iter().map(std::fs::read).collect::<Result<Vec<_>, _>>().context("reading files")?;
            stow(&url, token, clients.max(1), bodies).await
        }
    }
}

/// Slice `n` of run `run`'s one study.
fn bench_slice(size: u16, run: u64, n: u64) -> Spec {
    let mut spec = ct_slice(size, n);
    spec.sop_instance_uid = uid(run.wrapping_mul(7919).wrapping_add(11), n);
    spec.series_uid = uid(run.wrapping_mul(7919).wrapping_add(12), 0);
    spec.study_uid = uid(run.wrapping_mul(7919).wrapping_add(13), 0);
    spec
}

async fn send(
    address: &str,
    called: &str,
    calling: &str,
    associations: usize,
    sop_class: &'static str,
    instances: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let count = instances.len();
    let bytes_total: usize = instances.iter().map(|(_, b)| b.len()).sum();
    let instances = Arc::new(instances);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..associations {
        let instances = instances.clone();
        let (address, called, calling) = (address.to_owned(), called.to_owned(), calling.to_owned());
        tasks.spawn(async move {
            let contexts = vec![(sop_class.to_owned(), vec!["1.2.840.10008.1.2.1".to_owned()])];
            let mut scu = Scu::connect(&address, &calling, &called, &contexts, 256 * 1024).await?;
            let context = scu.context_for(sop_class, "1.2.840.10008.1.2.1").context("storage not accepted")?;
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            for (uid, bytes) in instances.iter().skip(worker).step_by(associations) {
                let t = Instant::now();
                let response = scu.store(context, sop_class, uid, bytes.as_slice(), bytes.len() as u64, None).await?;
                latencies.push(t.elapsed());
                if response.status != Some(0) {
                    failed += 1;
                }
            }
            scu.release().await?;
            Ok::<_, anyhow::Error>((latencies, failed))
        });
    }
    report(tasks, count, bytes_total, associations, started).await
}

const STOW_BOUNDARY: &str = "renkei-bench-boundary";

async fn stow(url: &str, token: Option<String>, clients: usize, files: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let bodies: Vec<Vec<u8>> = files
        .into_iter()
        .map(|file| {
            let mut body = format!("--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
            body.extend(file);
            body.extend(format!("\r\n--{STOW_BOUNDARY}--\r\n").into_bytes());
            body
        })
        .collect();
    let (count, bytes_total) = (bodies.len(), bodies.iter().map(Vec::len).sum());
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..clients {
        let (bodies, host, path, token) = (bodies.clone(), host.to_owned(), path.clone(), token.clone());
        tasks.spawn(async move {
            let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={STOW_BOUNDARY}");
            let authorization = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("Content-Type", content_type.as_str()), ("Accept", "application/dicom+json")];
            if let Some(authorization) = &authorization {
                headers.push(("Authorization", authorization));
            }
            let mut connection = renkei_testkit::http::Connection::open(&host).await?;
            let (mut latencies, mut failed) = (Vec::new(), 0u64);
            for body in bodies.iter().skip(worker).step_by(clients) {
                let t = Instant::now();
                let (status, _) = connection.request("POST", &path, &headers, body).await?;
                latencies.push(t.elapsed());
                if status != 200 {
                    failed += 1;
                }
            }
            Ok::<_, anyhow::Error>((latencies, failed))
        });
    }
    report(tasks, count, bytes_total, clients, started).await
}

/// Gathers the workers' latencies and failures and prints the JSON line of measurements.
async fn report(
    mut tasks: tokio::task::JoinSet<anyhow::Result<(Vec<Duration>, u64)>>,
    count: usize,
    bytes_total: usize,
    workers: usize,
    started: Instant,
) -> anyhow::Result<()> {
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (mut l, f) = joined??;
        latencies.append(&mut l);
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    if latencies.is_empty() {
        bail!("nothing was sent");
    }
    latencies.sort();
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{{\"count\":{count},\"failed\":{failed},\"associations\":{workers},\"bytes\":{bytes_total},\"seconds\":{seconds:.3},\
\"instances_per_sec\":{:.1},\"mb_per_sec\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        count as f64 / seconds,
        bytes_total as f64 / seconds / 1e6,
        quantile(0.5),
        quantile(0.99)
    );
    Ok(())
}

fn link_population(
    population: &std::path::Path,
    model_out: Option<PathBuf>,
    review: Option<PathBuf>,
    sweep: bool,
) -> anyhow::Result<()> {
    use renkei_matching::{Keys, Record, evaluate, link, model::Thresholds, train};
    let text = std::fs::read_to_string(population).with_context(|| format!("reading {}", population.display()))?;
    let people = renkei_testkit::fill::read_population(&text)?;
    let truth: Vec<u64> = people.iter().map(|p| p.person).collect();
    let records: Vec<Record> =
        people.into_iter().map(|p| Record { name: p.name, birth_date: p.birth_date, sex: p.sex }).collect();
    let started = Instant::now();
    let keys: Vec<Keys> = renkei_matching::parallel::map(&records, Keys::of);
    let keyed = started.elapsed();
    let model = train::train(&keys, &train::Training::default(), Thresholds::default());
    let trained = started.elapsed();
    let linkage = link::link(&keys, &model, &link::Constraints::default());
    let linked = started.elapsed();
    let report = evaluate::evaluate(&truth, &linkage, &model);
    if let Some(path) = model_out {
        std::fs::write(path, model.to_json())?;
    }
    if let Some(path) = review {
        let auto = renkei_matching::model::weight_of(model.thresholds.auto_link) as f32;
        let mut out = String::new();
        for pair in linkage.pairs.iter().filter(|p| p.weight < auto) {
            let (a, b) = (pair.a as usize, pair.b as usize);
            let levels = renkei_matching::compare::compare(&keys[a], &keys[b]);
            out += &format!(
                "{:.2}\t{}\t{levels:?}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                pair.weight,
                truth[a] == truth[b],
                records[a].name,
                records[a].birth_date,
                records[a].sex,
                records[b].name,
                records[b].birth_date,
                records[b].sex
            );
        }
        std::fs::write(path, out)?;
    }
    if sweep {
        for auto_link in [0.99, 0.995, 0.998, 0.999, 0.9995] {
            for review in [0.5, 0.8, 0.9, 0.95, 0.98] {
                let mut model = model.clone();
                model.thresholds = Thresholds { auto_link, review };
                let auto = renkei_matching::model::weight_of(auto_link) as f32;
                let floor = renkei_matching::model::weight_of(review) as f32;
                let pairs: Vec<_> = linkage.pairs.iter().filter(|p| p.weight >= floor).copied().collect();
                let person =
                    link::cluster(keys.len(), pairs.iter().filter(|p| p.weight >= auto), &link::Constraints::default());
                let linkage = link::Linkage { pairs, person, compared: linkage.compared };
                let r = evaluate::evaluate(&truth, &linkage, &model);
                println!(
                    "{}",
                    serde_json::json!({"auto_link": auto_link, "review": review,
                    "precision_auto": r.pairs_auto.precision, "recall_review": r.pairs_review.recall,
                    "review_per_1000": r.review_per_1000_records, "f1_auto": r.pairs_auto.f1})
                );
            }
        }
    }
    let seconds = |d: Duration| (d.as_secs_f64() * 100.0).round() / 100.0;
    let summary = serde_json::json!({
        "records": records.len(),
        "keys_seconds": seconds(keyed),
        "train_seconds": seconds(trained - keyed),
        "link_seconds": seconds(linked - trained),
        "total_seconds": seconds(linked),
        "prior": model.prior,
        "report": report,
    });
    println!("{summary}");
    Ok(())
}

/// The index a fill writes to: PostgreSQL when a URL is given, else SQLite in the data
/// directory. SQLite is closed at the end, so that its WAL is checkpointed away rather than
/// left for the next process's reads to wade through.
struct Index {
    store: Box<dyn ExamSink>,
    sqlite: Option<renkei_store_sqlite::SqliteStore>,
}

impl Index {
    async fn open(data_dir: Option<PathBuf>, database_url: Option<String>) -> anyhow::Result<Index> {
        match (data_dir, database_url) {
            (_, Some(url)) => {
                let store = renkei_store_postgres::PostgresStore::open(&url, 4).await?;
                Ok(Index { store: Box::new(SqlStore(store)), sqlite: None })
            }
            (Some(dir), None) => {
                std::fs::create_dir_all(&dir)?;
                let store = renkei_store_sqlite::SqliteStore::open(&dir.join("index.sqlite")).await?;
                Ok(Index { store: Box::new(SqlStore(store.clone())), sqlite: Some(store) })
            }
            (None, None) => bail!("say --data-dir or --database-url"),
        }
    }

    async fn close(self) {
        if let Some(sqlite) = self.sqlite {
            sqlite.close().await;
        }
    }
}
