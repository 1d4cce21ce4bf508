//! `renkei-testkit corpus DIR`: writes the synthetic corpus and prints its manifest (TSV).
//! `renkei-testkit send …`: the benchmark SCU. It builds the instances in memory first, then
//! sends them over parallel associations and prints one JSON line of measurements.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use renkei_dimse::scu::Scu;
use renkei_testkit::generate::{CT_IMAGE, Spec, ct_slice, dataset, index_instance, uid};

#[derive(Parser)]
#[command(name = "renkei-testkit", about = "Synthetic DICOM and the benchmark SCU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        Command::Send { address, called, calling, associations, count, size, run, index } => {
            let instances = (0..count).map(|n| if index { index_instance(run, n) } else { bench_slice(size, run, n) });
            let instances = instances.map(|spec| (spec.sop_instance_uid.clone(), dataset(&spec))).collect();
            send(&address, &called, &calling, associations.max(1), instances).await
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
            let contexts = vec![(CT_IMAGE.to_owned(), vec!["1.2.840.10008.1.2.1".to_owned()])];
            let mut scu = Scu::connect(&address, &calling, &called, &contexts, 256 * 1024).await?;
            let context = scu.context_for(CT_IMAGE, "1.2.840.10008.1.2.1").context("CT storage not accepted")?;
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            for (uid, bytes) in instances.iter().skip(worker).step_by(associations) {
                let t = Instant::now();
                let response = scu.store(context, CT_IMAGE, uid, bytes.as_slice(), bytes.len() as u64, None).await?;
                latencies.push(t.elapsed());
                if response.status != Some(0) {
                    failed += 1;
                }
            }
            scu.release().await?;
            Ok::<_, anyhow::Error>((latencies, failed))
        });
    }
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
        "{{\"count\":{count},\"failed\":{failed},\"associations\":{associations},\"bytes\":{bytes_total},\"seconds\":{seconds:.3},\
\"instances_per_sec\":{:.1},\"mb_per_sec\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        count as f64 / seconds,
        bytes_total as f64 / seconds / 1e6,
        quantile(0.5),
        quantile(0.99)
    );
    Ok(())
}
