//! Dose management end to end: RDSRs and CT images sent with DCMTK's storescu, read by the
//! running hub's extractor, listed by `renkei dose exams`, and read again by
//! `renkei dose reindex`.

use std::time::{Duration, Instant};

use crate::harness::{Fixture, Hub, dcmtk, text};

/// `renkei dose exams`, one map of column to value per exam.
fn exams(fixture: &Fixture) -> Vec<std::collections::HashMap<String, String>> {
    let out = fixture.admin(&["dose", "exams"]);
    let mut lines = out.lines();
    let header: Vec<String> = lines.next().expect("a header line").split('\t').map(str::to_owned).collect();
    lines.map(|line| header.iter().cloned().zip(line.split('\t').map(str::to_owned)).collect()).collect()
}

fn wait_for_exams(fixture: &Fixture, count: usize) -> Vec<std::collections::HashMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = exams(fixture);
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn dose_objects_sent_over_c_store_become_exams() {
    let fixture = Fixture::new();
    let config = fixture.root.path().join("dose.toml");
    std::fs::write(&config, "[dose]\nsettle_seconds = 0\nextract_every_ms = 200\n").expect("config written");
    let hub = Hub::start_with(&fixture.data_dir, &["--config", config.to_str().expect("utf-8 path")], &[]);
    let files = renkei_testkit::dose::write_corpus(&fixture.root.path().join("dose")).expect("dose corpus");
    for file in &files {
        let path = file.path.to_str().expect("utf-8 path");
        let output = dcmtk("storescu", &["-R", "-aet", "STORESCU", "-aec", "RENKEI", "127.0.0.1", &hub.port(), path]);
        assert!(output.status.success(), "storescu failed for {path}: {}", text(&output));
    }

    let found = wait_for_exams(&fixture, 5);
    assert_eq!(found.len(), 5, "{found:#?}");
    let exam = |kind: &str, source: &str| {
        found
            .iter()
            .find(|e| e["kind"] == kind && e["source"] == source)
            .unwrap_or_else(|| panic!("no {kind} exam from {source}: {found:#?}"))
    };
    // The continued report repeats the first event: each event counts once.
    let head = exam("ct", "rdsr");
    assert_eq!((head["ctdivol"].as_str(), head["dlp"].as_str()), ("75.00", "1600.00"));
    assert_eq!(head["description"], "頭部単純CT");
    assert_eq!(head["facility"], "east");
    // Canon's dGy·cm² and mGy, read by their unit codes.
    let angio = exam("projection", "rdsr");
    assert_eq!((angio["dap"].as_str(), angio["dose_rp"].as_str()), ("24.00", "300.00"));
    assert!(angio["device"].contains("CANON_MEC"), "{angio:?}");
    assert_eq!(exam("nm", "radiopharmaceutical")["activity"], "240.00");
    exam("mammography", "rdsr");
    // No RDSR: CTDIvol from the images, DLP over the imaged length (30 mm).
    let chest = exam("ct", "image_header");
    assert_eq!((chest["ctdivol"].as_str(), chest["dlp"].as_str()), ("8.00", "24.00"));
    assert_eq!(chest["description"], "胸部CT");

    // Reindexing forgets and reads every stored dose object again, to the same exams.
    drop(hub);
    let reindexed = fixture.admin(&["dose", "reindex"]);
    assert!(reindexed.contains("queued 8 stored objects"), "{reindexed}");
    assert!(reindexed.contains("5 dose reports"), "{reindexed}");
    let again = exams(&fixture);
    assert_eq!(again.len(), 5);
    assert!(again.iter().any(|e| e["kind"] == "ct" && e["dlp"] == "1600.00"));
}
