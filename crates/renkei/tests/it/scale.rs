//! Group scale: a PostgreSQL index shared by several nodes.

use renkei_testkit::postgres::Cluster;

use crate::harness::*;

/// Two nodes on one PostgreSQL index and one shared blob volume: what either stores, the
/// other finds and returns byte for byte.
#[test]
fn two_nodes_share_one_postgres_index() {
    let cluster = Cluster::start().expect("a throwaway PostgreSQL cluster");
    let fixture = Fixture::on_postgres(&cluster.url());
    std::fs::create_dir_all(&fixture.data_dir).expect("data dir");
    // Node B mounts the same volume at another path (and logs beside it).
    let volume_b = fixture.root.path().join("data-b");
    std::os::unix::fs::symlink(&fixture.data_dir, &volume_b).expect("second mount");
    let a = fixture.serve(&fixture.data_dir);
    let b = fixture.serve(&volume_b);

    fixture.store_raw(&a, "east", "EASTPY");
    fixture.store_with_dcmtk(&b, "west", "WESTSCU");
    assert!(!fixture.data_dir.join("index.sqlite").exists(), "no SQLite index beside PostgreSQL");
    assert_eq!(image_count(&b, "STORESCU"), fixture.files("east").len(), "B finds what A stored");
    assert_eq!(image_count(&a, "WESTSCU"), fixture.files("west").len(), "A finds what B stored");

    // C-GET from B returns A's objects exactly as they were sent.
    let out = fixture.root.path().join("got");
    std::fs::create_dir_all(&out).expect("dir");
    let mut args = vec!["127.0.0.1".to_owned(), b.port(), "EASTPY".into(), "RENKEI".into(), out.display().to_string()];
    args.push("Sato*".into());
    for file in fixture.files("east") {
        args.push(format!("{}:{}", file.sop_class_uid, file.transfer_syntax));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = python("find_get.py", &refs);
    assert!(output.status.success(), "{}", text(&output));
    let patient = fixture.files("east").into_iter().filter(|f| f.patient_id == "E0002").collect::<Vec<_>>();
    assert!(!patient.is_empty());
    for file in patient {
        let raw = std::fs::read(out.join(format!("{}.raw", file.sop_instance_uid))).expect("received from node B");
        assert!(raw == dataset_bytes(&file.path), "{} came back altered", file.modality);
    }

    // Counts agree from either node, and the admin CLI reads the same index.
    let stats = fixture.admin(&["stats"]);
    assert!(stats.contains("east") && stats.contains("west"), "{stats}");
}
