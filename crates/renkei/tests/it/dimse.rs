//! DIMSE end to end, with DCMTK and pynetdicom as the peers.

use crate::harness::*;

#[test]
fn echo_is_answered_and_unknown_calling_ae_titles_are_rejected() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let ok = dcmtk("echoscu", &["-aet", "STORESCU", "-aec", "RENKEI", "127.0.0.1", &hub.port()]);
    assert!(ok.status.success(), "{}", text(&ok));
    let rejected = dcmtk("echoscu", &["-aet", "STRANGER", "-aec", "RENKEI", "127.0.0.1", &hub.port()]);
    assert!(!rejected.status.success());
    assert!(text(&rejected).to_lowercase().contains("calling ae title not recogni"), "{}", text(&rejected));
    // A facility added while the server runs is seen by the next association.
    renkei(&fixture.data_dir, &["facility", "add", "north", "--name", "North", "--ae", "STRANGER"]);
    let now_known = dcmtk("echoscu", &["-aet", "STRANGER", "-aec", "RENKEI", "127.0.0.1", &hub.port()]);
    assert!(now_known.status.success(), "{}", text(&now_known));
}

#[test]
fn every_kind_and_syntax_is_stored_byte_for_byte_per_facility() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    fixture.store_raw(&hub, "west", "WESTSCU");
    let stored = blobs(&fixture.data_dir);
    for file in &fixture.corpus {
        let dataset = dataset_bytes(&file.path);
        assert!(stored.contains(&dataset), "{} ({}) not stored as received", file.modality, file.transfer_syntax);
    }
    let stats = renkei(&fixture.data_dir, &["stats"]);
    let row = |facility: &str| -> Vec<String> {
        let line = stats.lines().find(|l| l.starts_with(facility)).unwrap_or_else(|| panic!("{facility} in {stats}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    // east: 2 patients, 5 studies... counted from the corpus itself.
    let east = fixture.files("east");
    let west = fixture.files("west");
    assert_eq!(row("east")[4], east.len().to_string(), "{stats}");
    assert_eq!(row("west")[4], west.len().to_string(), "{stats}");
    // The SOP Instance UID that both facilities hold is two objects.
    let shared = &fixture.corpus.last().expect("twin").sop_instance_uid;
    assert_eq!(fixture.corpus.iter().filter(|f| &f.sop_instance_uid == shared).count(), 2);
    let find = |calling: &str| {
        let uid = format!("SOPInstanceUID={shared}");
        findscu(&hub, "-S", calling, &["QueryRetrieveLevel=IMAGE", &uid, "PatientID"])
    };
    let east_view = find("STORESCU");
    let west_view = find("WESTSCU");
    assert_eq!(find_results(&east_view), 1);
    assert_eq!(find_results(&west_view), 1);
    assert!(text(&east_view).contains("E0001") && !text(&east_view).contains("W0002"));
    assert!(text(&west_view).contains("W0002") && !text(&west_view).contains("E0001"));
}

#[test]
fn find_matches_per_ps3_4_at_every_level_and_root() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_with_dcmtk(&hub, "east", "STORESCU");
    fixture.store_with_dcmtk(&hub, "west", "WESTSCU");
    let find = |root: &str, keys: &[&str]| findscu(&hub, root, "STORESCU", keys);
    // Patient root, PATIENT level, with related counts.
    let patients =
        find("-P", &["QueryRetrieveLevel=PATIENT", "PatientID", "PatientName", "NumberOfPatientRelatedStudies"]);
    assert_eq!(find_results(&patients), 2, "{}", text(&patients));
    assert!(!text(&patients).contains("W0001"), "west's patient leaked into east's view");
    // Wildcards, case-insensitive on names.
    assert_eq!(find_results(&find("-S", &["QueryRetrieveLevel=STUDY", "PatientName=yamada*", "StudyInstanceUID"])), 3);
    assert_eq!(find_results(&find("-S", &["QueryRetrieveLevel=STUDY", "PatientName=Sat?^*", "StudyInstanceUID"])), 3);
    assert_eq!(find_results(&find("-S", &["QueryRetrieveLevel=STUDY", "PatientName=Nobody*", "StudyInstanceUID"])), 0);
    // Date ranges: open and closed.
    assert_eq!(find_results(&find("-S", &["QueryRetrieveLevel=STUDY", "StudyDate=20240101-", "StudyInstanceUID"])), 4);
    assert_eq!(
        find_results(&find("-S", &["QueryRetrieveLevel=STUDY", "StudyDate=20230101-20231231", "StudyInstanceUID"])),
        1
    );
    assert_eq!(find_results(&find("-S", &["QueryRetrieveLevel=STUDY", "StudyDate=-20221231", "StudyInstanceUID"])), 1);
    // Modalities in Study matches any listed modality and is returned.
    let mr_or_cr =
        find("-S", &["QueryRetrieveLevel=STUDY", "ModalitiesInStudy=MR\\CR", "NumberOfStudyRelatedInstances"]);
    assert_eq!(find_results(&mr_or_cr), 2, "{}", text(&mr_or_cr));
    // UID list matching.
    let ct_study = &fixture.files("east")[0].study_uid;
    let mr_study = &fixture.files("east")[3].study_uid;
    let list = format!("StudyInstanceUID={ct_study}\\{mr_study}");
    assert_eq!(find_results(&find("-S", &["QueryRetrieveLevel=STUDY", &list])), 2);
    // SERIES and IMAGE levels under a study, with counts and availability.
    let series_key = format!("StudyInstanceUID={ct_study}");
    let series = find(
        "-S",
        &["QueryRetrieveLevel=SERIES", &series_key, "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances"],
    );
    assert_eq!(find_results(&series), 2, "CT and dose SR series: {}", text(&series));
    assert!(text(&series).contains("[3 ]"), "3 CT slices: {}", text(&series));
    let images = find(
        "-S",
        &["QueryRetrieveLevel=IMAGE", &series_key, "SOPInstanceUID", "InstanceAvailability", "InstanceNumber"],
    );
    assert_eq!(find_results(&images), 4);
    assert!(text(&images).contains("ONLINE"));
    // Patient root at IMAGE level needs the patient key path; relational keys are allowed.
    let by_patient = find("-P", &["QueryRetrieveLevel=IMAGE", "PatientID=E0002", "SOPInstanceUID"]);
    assert_eq!(find_results(&by_patient), 3, "{}", text(&by_patient));
    // Study root has no PATIENT level: refused with a failure status, not an empty success.
    let wrong = find("-S", &["QueryRetrieveLevel=PATIENT", "PatientID"]);
    assert!(text(&wrong).contains("Error: DataSetDoesNotMatchSOPClass"), "0xA900: {}", text(&wrong));
}

/// Starts DCMTK's storescp as `ae_title` on `port`, writing into `dir`, and registers it as
/// a node of east. `options` go to storescp (`+xa` accepts every transfer syntax, `+xi`
/// only Implicit VR Little Endian).
fn viewer_node(
    fixture: &Fixture,
    ae_title: &str,
    dir: &std::path::Path,
    port: u16,
    options: &[&str],
) -> std::process::Child {
    let storescp = std::process::Command::new("/usr/bin/storescp")
        .args(["-aet", ae_title])
        .args(options)
        .arg("-od")
        .arg(dir)
        .arg(port.to_string())
        .spawn()
        .expect("storescp starts");
    renkei(
        &fixture.data_dir,
        &["node", "add", ae_title, "--facility", "east", "--host", "127.0.0.1", "--port", &port.to_string()],
    );
    storescp
}

#[test]
fn move_sends_to_registered_nodes_and_get_returns_on_the_same_association() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_with_dcmtk(&hub, "east", "STORESCU");
    let received = fixture.root.path().join("received");
    std::fs::create_dir_all(&received).expect("dir");
    let dest_port = free_port();
    let mut storescp = viewer_node(&fixture, "VIEWER", &received, dest_port, &["+xa"]);

    let ct = &fixture.files("east")[0];
    let study = format!("StudyInstanceUID={}", ct.study_uid);
    let moved = movescu(&hub, "STORESCU", "VIEWER", &["QueryRetrieveLevel=STUDY", &study]);
    let _ = storescp.kill();
    let _ = storescp.wait();
    assert!(moved.status.success(), "{}", text(&moved));
    let files = std::fs::read_dir(&received).expect("received").count();
    assert_eq!(files, 4, "3 CT slices and the dose report: {}", text(&moved));
    assert!(text(&moved).contains("Pending"), "pending responses carry counts: {}", text(&moved));

    let unknown = movescu(&hub, "STORESCU", "NOWHERE", &["QueryRetrieveLevel=STUDY", &study]);
    assert!(text(&unknown).contains("Refused: MoveDestinationUnknown"), "0xA801: {}", text(&unknown));
    // A node of another facility is no destination for east.
    renkei(
        &fixture.data_dir,
        &["node", "add", "WESTVIEW", "--facility", "west", "--host", "127.0.0.1", "--port", &dest_port.to_string()],
    );
    let foreign = movescu(&hub, "STORESCU", "WESTVIEW", &["QueryRetrieveLevel=STUDY", &study]);
    assert!(text(&foreign).contains("Refused: MoveDestinationUnknown"), "0xA801: {}", text(&foreign));

    let got = fixture.root.path().join("got");
    std::fs::create_dir_all(&got).expect("dir");
    let get = getscu(&hub, "EASTGET", &got, &["QueryRetrieveLevel=STUDY", &study]);
    assert!(get.status.success(), "{}", text(&get));
    assert_eq!(std::fs::read_dir(&got).expect("got").count(), 4, "{}", text(&get));
}

#[test]
fn compressed_objects_reach_peers_that_take_only_uncompressed() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    // One CT slice becomes JPEG-LS: a new version of the same instance.
    let ct = fixture.files("east").into_iter().find(|f| f.modality == "CT").expect("a CT slice");
    let jpeg_ls = fixture.root.path().join("jpeg-ls.dcm");
    let compressed = dcmtk("dcmcjpls", &[ct.path.to_str().expect("path"), jpeg_ls.to_str().expect("path")]);
    assert!(compressed.status.success(), "{}", text(&compressed));
    let sent = python("send_raw.py", &["127.0.0.1", &hub.port(), "EASTPY", "RENKEI", jpeg_ls.to_str().expect("path")]);
    assert!(text(&sent).contains("\"status\": 0"), "{}", text(&sent));
    let original_pixels = pixel_data(&ct.path);
    // What a peer got of that slice: a native syntax, pixels decoded.
    let check = |dir: &std::path::Path, syntax: &str| {
        let file = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(&ct.sop_instance_uid)))
            .expect("the JPEG-LS slice arrived");
        let (_, received) = renkei_service::read_part10_header(&file).expect("readable").expect("DICOM");
        assert_eq!(received.as_str(), syntax);
        assert!(pixel_data(&file) == original_pixels, "decoded to the original pixels");
    };

    // storescp without +xa takes uncompressed syntaxes only; with +xi, an old workstation's
    // habit, Implicit VR Little Endian only. Each gets all four objects of the study.
    let study = format!("StudyInstanceUID={}", ct.study_uid);
    for (node, options, syntax) in
        [("VIEWER", [].as_slice(), "1.2.840.10008.1.2.1"), ("OLDVIEW", &["+xi"], "1.2.840.10008.1.2")]
    {
        let received = fixture.root.path().join(node);
        std::fs::create_dir_all(&received).expect("dir");
        let mut storescp = viewer_node(&fixture, node, &received, free_port(), options);
        let moved = movescu(&hub, "EASTPY", node, &["QueryRetrieveLevel=STUDY", &study]);
        let _ = storescp.kill();
        let _ = storescp.wait();
        assert!(moved.status.success(), "{}", text(&moved));
        assert_eq!(std::fs::read_dir(&received).expect("dir").count(), 4, "{node}: {}", text(&moved));
        check(&received, syntax);
    }

    // getscu proposes uncompressed syntaxes for what it receives.
    let got = fixture.root.path().join("got");
    std::fs::create_dir_all(&got).expect("dir");
    let get = getscu(&hub, "EASTPY", &got, &["QueryRetrieveLevel=STUDY", &study]);
    assert!(get.status.success(), "{}", text(&get));
    assert_eq!(std::fs::read_dir(&got).expect("dir").count(), 4, "every object arrived: {}", text(&get));
    check(&got, "1.2.840.10008.1.2.1");
}

#[test]
fn pynetdicom_finds_by_name_and_gets_exact_bytes_back() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    let out = fixture.root.path().join("raw");
    std::fs::create_dir_all(&out).expect("dir");
    let mut contexts: Vec<String> = Vec::new();
    for file in fixture.files("east") {
        let pair = format!("{}:{}", file.sop_class_uid, file.transfer_syntax);
        if !contexts.contains(&pair) {
            contexts.push(pair);
        }
    }
    let mut args = vec![
        "127.0.0.1".to_owned(),
        hub.port(),
        "EASTPY".into(),
        "RENKEI".into(),
        out.display().to_string(),
        "Sato*".into(),
    ];
    args.extend(contexts);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = python("find_get.py", &refs);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    let json: serde_json::Value = serde_json::from_str(report.lines().last().expect("report")).expect("json report");
    assert_eq!(json["studies"].as_array().map(Vec::len), Some(3), "{report}");
    assert_eq!(json["get_statuses"], serde_json::json!([0, 0, 0]), "{report}");
    for file in fixture.files("east").into_iter().filter(|f| f.patient_id == "E0002") {
        let raw = std::fs::read(out.join(format!("{}.raw", file.sop_instance_uid))).expect("received over C-GET");
        let original = dataset_bytes(&file.path);
        assert!(raw == original, "{} came back altered: {} bytes, sent {}", file.modality, raw.len(), original.len());
    }
}
