//! `renkei import`: bulk import with a summary.

use crate::harness::*;

#[test]
fn import_reports_stored_duplicates_not_dicom_and_failures() {
    let fixture = Fixture::new();
    let folder = fixture.root.path().join("corpus").join("east");
    std::fs::write(folder.join("notes.txt"), "not a dicom file").expect("write");
    let first = fixture.files("east")[0];
    let bytes = std::fs::read(&first.path).expect("read");
    std::fs::write(folder.join("cut.dcm"), &bytes[..bytes.len() - 500]).expect("write");
    let east = fixture.files("east").len();
    let summary = renkei(&fixture.data_dir, &["import", folder.to_str().expect("path"), "--facility", "east"]);
    assert!(
        summary.contains(&format!("{east} stored, 0 new versions, 0 duplicates, 1 not DICOM, 1 failed")),
        "{summary}"
    );
    assert!(summary.contains("cut.dcm: dataset is truncated"), "{summary}");
    let again = renkei(&fixture.data_dir, &["import", first.path.to_str().expect("path"), "--facility", "east"]);
    assert!(again.contains("0 stored, 0 new versions, 1 duplicates"), "{again}");
    let stats = renkei(&fixture.data_dir, &["stats"]);
    assert!(
        stats.lines().any(|l| l.starts_with("east") && l.split_whitespace().nth(4) == Some(&east.to_string())),
        "{stats}"
    );
    // Imported objects are served like received ones.
    let hub = Hub::start(&fixture.data_dir);
    assert_eq!(image_count(&hub, "STORESCU"), east);
}

#[test]
fn import_into_an_unknown_facility_fails_clearly() {
    let fixture = Fixture::new();
    let output = std::process::Command::new(RENKEI)
        .args(["import", "--facility", "nowhere"])
        .arg(fixture.root.path().join("corpus"))
        .arg("--data-dir")
        .arg(&fixture.data_dir)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("facility nowhere does not exist"));
}
