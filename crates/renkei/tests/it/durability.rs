//! Durability and integrity: kill -9, bad input, re-sends, a full disk, concurrency.

use std::path::Path;

use renkei_dimse::scu::Scu;
use renkei_testkit::generate::{CT_IMAGE, ct_slice, dataset, part10, uid};

use crate::harness::*;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn connect(hub: &Hub, calling: &str) -> Scu {
    let contexts = vec![
        (CT_IMAGE.to_owned(), vec![EXPLICIT_LE.to_owned()]),
        (renkei_dimse::scu::VERIFICATION.to_owned(), vec!["1.2.840.10008.1.2".to_owned()]),
    ];
    Scu::connect(&hub.dicom.to_string(), calling, "RENKEI", &contexts, 256 * 1024).await.expect("association")
}

/// A CT slice of the given run and number: distinct UIDs per (run, n).
fn slice(run: u64, n: u64) -> (String, Vec<u8>) {
    let mut spec = ct_slice(64, n);
    spec.sop_instance_uid = uid(500 + run, n);
    spec.study_uid = uid(600 + run, 0);
    spec.series_uid = uid(700 + run, 0);
    (spec.sop_instance_uid.clone(), dataset(&spec))
}

async fn store(scu: &mut Scu, uid: &str, bytes: &[u8]) -> (u16, Option<String>) {
    let context = scu.context_for(CT_IMAGE, EXPLICIT_LE).expect("CT accepted");
    let response = scu.store(context, CT_IMAGE, uid, bytes, bytes.len() as u64, None).await.expect("store round trip");
    (response.status.expect("status"), response.error_comment)
}

fn tmp_is_empty(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("tmp")).expect("tmp dir").count() == 0
}

#[test]
fn acknowledged_instances_survive_kill_9() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let acknowledged = runtime().block_on(async {
        let mut scu = connect(&hub, "STORESCU").await;
        let mut acknowledged = Vec::new();
        for n in 0..40 {
            let (uid, bytes) = slice(1, n);
            let (status, _) = store(&mut scu, &uid, &bytes).await;
            assert_eq!(status, 0);
            acknowledged.push((uid, bytes));
        }
        acknowledged
    });
    // Killed right after the last response, with the association still open.
    hub.kill9();
    let hub = Hub::start(&fixture.data_dir);
    assert_eq!(image_count(&hub, "STORESCU"), acknowledged.len());
    let stored = blobs(&fixture.data_dir);
    for (_, bytes) in &acknowledged {
        assert!(stored.contains(bytes));
    }
}

#[test]
fn bad_input_gets_failure_statuses_and_stores_nothing() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let dir = fixture.root.path().join("bad");
    std::fs::create_dir_all(&dir).expect("dir");
    let (good_uid, good) = slice(2, 0);
    let write = |name: &str, meta_uid: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, part10(bytes, CT_IMAGE, meta_uid, EXPLICIT_LE)).expect("write");
        path.display().to_string()
    };
    // Cut inside the pixel data.
    let truncated = write("truncated.dcm", &good_uid, &good[..good.len() - 1000]);
    // Garbage after a valid start: an element with an impossible VR.
    let mut garbled_bytes = good[..200].to_vec();
    garbled_bytes.extend_from_slice(b"\x10\x00\x10\x00zz\x04\x00abcd");
    let garbled = write("garbled.dcm", &good_uid, &garbled_bytes);
    // The command names another instance than the data set holds.
    let mismatch = write("mismatch.dcm", &uid(9, 9), &good);
    // A data set without a Study Instance UID.
    let mut spec = ct_slice(64, 1);
    spec.sop_instance_uid = uid(2, 77);
    spec.study_uid = String::new();
    let no_study = write("no-study.dcm", &spec.sop_instance_uid, &dataset(&spec));
    let output = python(
        "send_raw.py",
        &["127.0.0.1", &hub.port(), "EASTPY", "RENKEI", &truncated, &garbled, &mismatch, &no_study],
    );
    let report = text(&output);
    let statuses: Vec<serde_json::Value> = report.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(statuses.len(), 4, "{report}");
    assert_eq!(statuses[0]["status"], 0xC000, "truncated: {report}");
    assert_eq!(statuses[1]["status"], 0xC000, "garbled: {report}");
    assert_eq!(statuses[2]["status"], 0xA900, "mismatch: {report}");
    assert_eq!(statuses[3]["status"], 0xA900, "no study: {report}");
    for status in &statuses {
        assert!(status["comment"].as_str().is_some_and(|c| !c.is_empty()), "every failure explains itself: {report}");
    }
    assert_eq!(image_count(&hub, "STORESCU"), 0, "nothing partial is indexed");
    assert!(blobs(&fixture.data_dir).is_empty(), "nothing partial is kept");
    assert!(tmp_is_empty(&fixture.data_dir));

    // Malformed PDUs: garbage on a fresh connection, then a PDU that lies about its length.
    use std::io::Write;
    let mut raw = std::net::TcpStream::connect(hub.dicom).expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut lying = std::net::TcpStream::connect(hub.dicom).expect("connect");
    lying.write_all(&[0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xF0, 0x00, 0x01]).expect("write");
    drop(lying);
    // Every other association keeps being served.
    let (status, _) = runtime().block_on(async {
        let mut scu = connect(&hub, "STORESCU").await;
        store(&mut scu, &good_uid, &good).await
    });
    assert_eq!(status, 0);
    let echo = dcmtk("echoscu", &["-aet", "STORESCU", "-aec", "RENKEI", "127.0.0.1", &hub.port()]);
    assert!(echo.status.success(), "{}", text(&echo));
}

#[test]
fn resends_are_deduplicated_and_changed_content_becomes_a_new_version() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let (sop_uid, first) = slice(3, 0);
    let mut spec = ct_slice(64, 5);
    spec.sop_instance_uid = sop_uid.clone();
    spec.study_uid = uid(603, 0);
    spec.series_uid = uid(703, 0);
    let changed = dataset(&spec);
    assert_ne!(first, changed);
    runtime().block_on(async {
        let mut scu = connect(&hub, "STORESCU").await;
        assert_eq!(store(&mut scu, &sop_uid, &first).await.0, 0);
        assert_eq!(store(&mut scu, &sop_uid, &first).await.0, 0, "identical re-send succeeds");
        assert_eq!(blobs(&fixture.data_dir).len(), 1, "and is not stored twice");
        assert_eq!(store(&mut scu, &sop_uid, &changed).await.0, 0);
    });
    let stored = blobs(&fixture.data_dir);
    assert_eq!(stored.len(), 2, "the previous version is kept");
    assert_eq!(image_count(&hub, "STORESCU"), 1, "one instance, current version");
    let got = fixture.root.path().join("got");
    std::fs::create_dir_all(&got).expect("dir");
    let key = format!("SOPInstanceUID={sop_uid}");
    let study = format!("StudyInstanceUID={}", uid(603, 0));
    let series = format!("SeriesInstanceUID={}", uid(703, 0));
    let output = getscu(&hub, "EASTGET", &got, &["QueryRetrieveLevel=IMAGE", &study, &series, &key]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(std::fs::read_dir(&got).expect("got").count(), 1, "{}", text(&output));
}

#[test]
fn thirty_two_concurrent_associations_all_succeed() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime");
    let statuses = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for association in 0..32u64 {
            let mut scu = connect(&hub, if association % 2 == 0 { "STORESCU" } else { "EASTPY" }).await;
            tasks.spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..5 {
                    let (uid, bytes) = slice(100 + association, n);
                    statuses.push(store(&mut scu, &uid, &bytes).await.0);
                }
                scu.release().await.expect("release");
                statuses
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done.expect("task"));
        }
        all
    });
    assert_eq!(statuses.len(), 160);
    assert!(statuses.iter().all(|s| *s == 0), "{statuses:?}");
    assert_eq!(image_count(&hub, "STORESCU"), 160);
}

#[test]
fn a_full_disk_is_refused_with_a700_and_the_archive_keeps_serving() {
    // A real full filesystem: a small tmpfs (root only; CI runs as root).
    let fixture = Fixture::new();
    let mount = fixture.root.path().join("small");
    std::fs::create_dir_all(&mount).expect("dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mounting a tmpfs needs root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mount);
    let data_dir = mount.join("data");
    renkei(&data_dir, &["facility", "add", "east", "--name", "East", "--ae", "STORESCU"]);
    let hub = Hub::start(&data_dir);
    let (statuses, small_status) = runtime().block_on(async {
        let mut scu = connect(&hub, "STORESCU").await;
        let mut statuses = Vec::new();
        // 512x512 slices of about 512 KiB: the 3 MiB filesystem fills within a few.
        for n in 0..8 {
            let mut spec = ct_slice(512, n);
            spec.sop_instance_uid = uid(800, n);
            let bytes = dataset(&spec);
            statuses.push(store(&mut scu, &spec.sop_instance_uid, &bytes).await);
        }
        // The association is still usable after the refusals.
        let echo = scu.echo().await.expect("echo after full disk");
        (statuses, echo)
    });
    assert_eq!(small_status, 0);
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 0xA700).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(statuses.iter().all(|(s, _)| *s == 0 || *s == 0xA700), "{statuses:?}");
    let stored = statuses.iter().filter(|(s, _)| *s == 0).count();
    assert_eq!(image_count(&hub, "STORESCU"), stored, "only acknowledged instances are indexed");
    assert!(tmp_is_empty(&data_dir), "refused partial objects are removed");
}

/// Slow (writes 1 GiB): `cargo test -p renkei --test it -- --ignored`.
#[test]
#[ignore]
fn a_one_gibibyte_instance_streams_to_disk_in_bounded_memory() {
    use renkei_dicom::tags::{self, tag};
    use renkei_dicom::{Syntax, write::DatasetWriter};
    use tokio::io::AsyncReadExt;

    const PIXELS: u32 = 1 << 30;
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let sop_uid = uid(900, 1);
    let mut header = DatasetWriter::new(Syntax::EXPLICIT_LE);
    header
        .text(tags::SOP_CLASS_UID, *b"UI", CT_IMAGE)
        .text(tags::SOP_INSTANCE_UID, *b"UI", &sop_uid)
        .text(tag(0x0008, 0x0060), *b"CS", "CT")
        .text(tag(0x0010, 0x0020), *b"LO", "BIG0001")
        .text(tags::STUDY_INSTANCE_UID, *b"UI", &uid(901, 1))
        .text(tags::SERIES_INSTANCE_UID, *b"UI", &uid(902, 1))
        .element_header(tags::PIXEL_DATA, *b"OB", PIXELS);
    let header = header.into_bytes();
    let size = header.len() as u64 + u64::from(PIXELS);
    let before = hub.peak_rss();
    let status = runtime().block_on(async {
        let mut scu = connect(&hub, "STORESCU").await;
        let context = scu.context_for(CT_IMAGE, EXPLICIT_LE).expect("CT accepted");
        // Generated while sent: the test holds no more of it in memory than the server may.
        let data = header.as_slice().chain(tokio::io::repeat(0x5A).take(u64::from(PIXELS)));
        scu.store(context, CT_IMAGE, &sop_uid, data, size, None).await.expect("store").status
    });
    assert_eq!(status, Some(0));
    let growth = hub.peak_rss().saturating_sub(before);
    eprintln!("server peak RSS grew by {} MiB while receiving {size} bytes", growth >> 20);
    assert!(growth < 200 << 20, "server memory grew by {} MiB", growth >> 20);
    let stored: Vec<_> = std::fs::read_dir(fixture.data_dir.join("blobs"))
        .expect("blobs")
        .flat_map(|shard| std::fs::read_dir(shard.expect("shard").path()).expect("shard"))
        .map(|blob| blob.expect("blob").metadata().expect("metadata").len())
        .collect();
    assert_eq!(stored, vec![size]);
    assert_eq!(image_count(&hub, "STORESCU"), 1);
}
