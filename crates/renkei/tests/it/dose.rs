//! Dose management end to end: RDSRs and CT images sent with DCMTK's storescu, read by the
//! running hub's extractor, listed by `renkei dose exams`, and read again by
//! `renkei dose reindex`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dicomweb::{request, token};
use crate::harness::{Fixture, Hub, dcmtk, run_console_script, text};

/// `renkei dose exams`, one map of column to value per exam.
fn exams(fixture: &Fixture) -> Vec<Row> {
    let out = fixture.admin(&["dose", "exams"]);
    let mut lines = out.lines();
    let header: Vec<String> = lines.next().expect("a header line").split('\t').map(str::to_owned).collect();
    lines.map(|line| header.iter().cloned().zip(line.split('\t').map(str::to_owned)).collect()).collect()
}

type Row = std::collections::HashMap<String, String>;

/// The exams once `settled` says they are, or after 30 s (for the assertions to explain).
fn wait_for(fixture: &Fixture, settled: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = exams(fixture);
        if settled(&found) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn wait_for_exams(fixture: &Fixture, count: usize) -> Vec<Row> {
    wait_for(fixture, |found| found.len() >= count)
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

    // The extractor may read the chest CT before its last slice is in (settle_seconds = 0),
    // and reads it again once it is.
    let found = wait_for(&fixture, |found| found.len() == 5 && found.iter().any(|e| e["dlp"] == "24.00"));
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

    // The API: a facility's token sees its own exams, an administrator's every facility's.
    let (east, west, admin) = (
        token(&fixture, &["--facility", "east"]),
        token(&fixture, &["--facility", "west"]),
        token(&fixture, &["--admin"]),
    );
    let call = |method: &str, token: &str, path: &str, body: &str| {
        let bearer = format!("Bearer {token}");
        let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
        let (status, _, body) = request(&hub, method, path, &headers, body.as_bytes());
        (status, body)
    };
    let json = |(status, body): (u16, String)| {
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    let listed = json(call("GET", &east, "/api/dose/exams", ""));
    assert_eq!(listed.as_array().map(Vec::len), Some(5));
    assert_eq!(json(call("GET", &admin, "/api/dose/exams", "")).as_array().map(Vec::len), Some(5));
    assert_eq!(json(call("GET", &west, "/api/dose/exams", "")), serde_json::json!([]));
    assert_eq!(json(call("GET", &admin, "/api/dose/exams?facility=west", "")), serde_json::json!([]));
    assert_eq!(call("GET", &west, "/api/dose/exams?facility=east", "").0, 403);
    assert_eq!(call("GET", &east, "/api/dose/exams?kind=xray", "").0, 400);
    let ct = json(call("GET", &east, "/api/dose/exams?kind=ct", ""));
    let head = ct.as_array().into_iter().flatten().find(|e| e["source"] == "rdsr").expect("the head CT");
    let path = format!("/api/dose/exams/{}", head["id"]);
    assert_eq!(call("GET", &west, &path, "").0, 404, "another facility's exam does not exist for it");
    let detail = json(call("GET", &east, &path, ""));
    assert_eq!(detail["report"]["events"].as_array().map(Vec::len), Some(2));
    // Its first scan's SSDE from that scan's images (their mean water-equivalent diameter,
    // 16 cm, on the 16 cm head phantom): the RDSR does not say the patient's size.
    let ssde = &detail["report"]["events"][0]["data"]["ssde"];
    assert_eq!(
        (&ssde["method"], &ssde["diameter_cm"]),
        (&serde_json::json!("water_equivalent_diameter"), &serde_json::json!(16.0)),
        "{detail}"
    );
    assert!((ssde["mgy"].as_f64().unwrap_or(0.0) - 75.68).abs() < 0.01, "{ssde}");
    assert_eq!(detail["report"]["events"][1]["data"]["ssde"], Value::Null, "no images of the second scan");
    assert_eq!(detail["drl"]["comparisons"], serde_json::json!([]), "unmapped: nothing to compare");

    // An administrator confirms the suggested category; the exam is then over the 2025 level.
    let protocols = json(call("GET", &admin, "/api/dose/protocols?facility=east&kind=ct", ""));
    let unmapped = protocols["unmapped"].as_array().expect("unmapped");
    let entry = unmapped.iter().find(|u| u["description"] == "頭部単純CT").expect("the head CT's description");
    assert_eq!(entry["suggestions"][0]["category"], "ct.head");
    let mapping =
        r#"{"facility":"east","kind":"ct","description":"頭部単純CT","category":"ct.head","by":"鈴木 技師長"}"#;
    assert_eq!(call("POST", &east, "/api/dose/protocols", mapping).0, 403);
    assert_eq!(call("POST", &admin, "/api/dose/protocols", &mapping.replace("ct.head", "ct.nowhere")).0, 400);
    assert_eq!(json(call("POST", &admin, "/api/dose/protocols", mapping))["exams"], 1);
    let detail = json(call("GET", &east, &path, ""));
    assert_eq!(detail["category"], "ct.head");
    assert_eq!(detail["drl"]["edition"], "2025");
    assert_eq!(detail["drl"]["exceeds"], true);
    let ctdivol = detail["drl"]["comparisons"].as_array().into_iter().flatten().find(|c| c["metric"] == "ctdivol");
    assert_eq!(ctdivol.map(|c| c["level"].clone()), Some(serde_json::json!(67.0)));

    // Distributions: a facility's own, per device; the benchmark across facilities is the
    // administrators' alone.
    let own = json(call("GET", &east, "/api/dose/distribution?category=ct.head&metric=ctdivol", ""));
    assert_eq!(own["level"], 67.0);
    assert_eq!(own["groups"][0]["median"], 75.0);
    assert!(own["groups"][0]["device"].as_str().is_some_and(|d| d.contains("Synthetica")), "{own}");
    let trend = json(call("GET", &east, "/api/dose/distribution?category=ct.head&metric=ctdivol&by=device_month", ""));
    assert_eq!(trend["groups"].as_array().map(Vec::len), Some(1));
    assert!(trend["groups"][0]["month"].as_str().is_some_and(|m| m.len() == 7), "{trend}");
    assert_eq!(trend["groups"][0]["device"], own["groups"][0]["device"]);
    assert_eq!(call("GET", &east, "/api/dose/distribution?metric=dlp&by=week", "").0, 400);

    // Workload: the CT exams by weekday and hour in Japan.
    let workload = json(call("GET", &east, "/api/dose/workload?kind=ct", ""));
    let mut expected: Vec<(i64, i64)> = ct
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["started_at"].as_i64())
        .map(|at| (((at + 32_400) / 86_400 + 4) % 7, (at + 32_400) % 86_400 / 3600))
        .collect();
    expected.sort();
    let cells = workload["cells"].as_array().expect("cells");
    let mut got: Vec<(i64, i64)> = Vec::new();
    for cell in cells {
        let place = (cell["weekday"].as_i64().unwrap_or(-1), cell["hour"].as_i64().unwrap_or(-1));
        got.extend(std::iter::repeat_n(place, cell["exams"].as_u64().unwrap_or(0) as usize));
    }
    assert_eq!((got, workload["exams"].as_u64()), (expected, Some(2)), "{workload}");
    assert_eq!(call("GET", &west, "/api/dose/workload?facility=east", "").0, 403);

    let benchmark = "/api/dose/benchmark?category=ct.head&metric=ctdivol";
    assert_eq!(call("GET", &east, benchmark, "").0, 403);
    assert_eq!(call("GET", &west, benchmark, "").0, 403);
    let uploader = token(&fixture, &["--facility", "east", "--role", "uploader"]);
    assert_eq!(call("GET", &uploader, benchmark, "").0, 403);
    let across = json(call("GET", &admin, benchmark, ""));
    assert_eq!(across["facilities"].as_array().map(Vec::len), Some(1));
    assert_eq!(across["facilities"][0]["facility"], "east");
    assert!((across["facilities"][0]["ratio"].as_f64().unwrap_or(0.0) - 75.0 / 67.0).abs() < 1e-9);
    assert_eq!(across["devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(call("GET", &admin, "/api/dose/benchmark?category=ct.head&metric=kerma", "").0, 400);

    // A patient's history, with its totals; another facility cannot see that patient.
    let history = json(call("GET", &east, "/api/dose/history?patient_id=DOSE00001", ""));
    assert_eq!(history["exams"].as_array().map(Vec::len), Some(1));
    assert_eq!(history["totals"]["dlp"], 1600.0);
    assert_eq!(call("GET", &west, "/api/dose/history?patient_id=DOSE00001", "").0, 404);
    assert_eq!(call("GET", &west, "/api/dose/history?facility=east&patient_id=DOSE00001", "").0, 403);
    let all = json(call("GET", &admin, "/api/dose/history?facility=east&patient_id=DOSE00001", ""));
    assert_eq!(all["exams"], history["exams"]);

    // Alerts: the head CT is over its DRL; a facility's uploader sets a per-exam DLP
    // threshold and a 12-week cumulative one, which flag it and its patient too.
    let since = "since=1735657200";
    let alerts = json(call("GET", &east, &format!("/api/dose/alerts?{since}"), ""));
    assert_eq!(alerts["complete"], true, "every exam of the period checked");
    let flagged = alerts["exams"].as_array().expect("exams");
    assert_eq!(flagged.len(), 1, "{alerts}");
    assert_eq!(flagged[0]["reasons"][0]["kind"], "drl");
    let rule = r#"{"metric":"dlp","threshold":1000,"by":"佐藤"}"#;
    assert_eq!(call("POST", &east, "/api/dose/alert-rules", rule).0, 403, "a viewer's token");
    assert_eq!(json(call("POST", &uploader, "/api/dose/alert-rules", rule))["rule"]["threshold"], 1000.0);
    let cumulative = r#"{"metric":"dlp","weeks":12,"threshold":1500,"by":"佐藤"}"#;
    json(call("POST", &uploader, "/api/dose/alert-rules", cumulative));
    assert_eq!(call("POST", &uploader, "/api/dose/alert-rules", &cumulative.replace("1500", "-1")).0, 400);
    assert_eq!(json(call("GET", &east, "/api/dose/alert-rules", "")).as_array().map(Vec::len), Some(2));
    let alerts = json(call("GET", &east, &format!("/api/dose/alerts?{since}"), ""));
    let reasons = alerts["exams"][0]["reasons"].as_array().expect("reasons");
    assert!(reasons.iter().any(|r| r["kind"] == "threshold" && r["threshold"] == 1000.0), "{alerts}");
    assert_eq!(alerts["patients"][0]["patient_id"], "DOSE00001");
    assert_eq!(alerts["patients"][0]["total"], 1600.0);
    assert_eq!(json(call("GET", &west, &format!("/api/dose/alerts?{since}"), ""))["exams"], serde_json::json!([]));

    let (status, csv) = call("GET", &east, "/api/dose/exams.csv", "");
    assert_eq!(status, 200);
    let rows: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(rows.len(), 6, "{csv}");
    assert!(rows[0].starts_with("facility,study_uid,patient_id,kind"));
    assert!(
        rows.iter().any(|r| r.contains("頭部単純CT") && r.contains("ct.head") && r.ends_with("2025,true")),
        "{csv}"
    );

    // The console's dose pages, in headless Chromium, drawn with Chart.js.
    run_console_script(
        &fixture,
        &hub,
        "dose.test.mjs",
        &east,
        &[&admin, &uploader],
        "dose console ok",
        &["dose.png", "dose-history.png", "dose-benchmark.png", "dose-settings.png"],
    );

    // Reindexing forgets and reads every stored dose object again, to the same exams.
    drop(hub);
    let reindexed = fixture.admin(&["dose", "reindex"]);
    assert!(reindexed.contains("queued 10 stored objects"), "{reindexed}");
    assert!(reindexed.contains("5 dose reports"), "{reindexed}");
    let again = exams(&fixture);
    assert_eq!(again.len(), 5);
    assert!(again.iter().any(|e| e["kind"] == "ct" && e["dlp"] == "1600.00"));
}

/// The relative difference of two measurements.
fn off(a: &Value, b: &Value) -> f64 {
    let (a, b) = (a.as_f64().expect("a number"), b.as_f64().expect("a number"));
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn vendor_rdsrs_read_as_pydicom_reads_them() {
    let fixture = Fixture::new();
    let config = fixture.root.path().join("dose.toml");
    std::fs::write(&config, "[dose]\nsettle_seconds = 0\nextract_every_ms = 200\n").expect("config written");
    let hub = Hub::start_with(&fixture.data_dir, &["--config", config.to_str().expect("utf-8 path")], &[]);
    let out = fixture.root.path().join("vendor");
    let output = crate::harness::python("vendor_rdsrs.py", &[out.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", text(&output));
    let files: Vec<Value> = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    assert_eq!(files.len(), 4, "pyskindose ships four RDSRs");
    for file in &files {
        let path = file["path"].as_str().expect("path");
        let output = dcmtk("storescu", &["-R", "-aet", "STORESCU", "-aec", "RENKEI", "127.0.0.1", &hub.port(), path]);
        assert!(output.status.success(), "storescu failed for {path}: {}", text(&output));
    }
    let found = wait_for_exams(&fixture, 4);
    assert_eq!(found.len(), 4, "{found:#?}");

    let admin = token(&fixture, &["--admin"]);
    let bearer = format!("Bearer {admin}");
    let get = |path: &str| {
        let (status, _, body) = request(&hub, "GET", path, &[("Authorization", bearer.as_str())], &[]);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    let exams = get("/api/dose/exams?kind=projection");
    for file in &files {
        let exam = exams
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["study_uid"] == file["study_uid"])
            .unwrap_or_else(|| panic!("no exam for {}", file["path"]));
        let detail = get(&format!("/api/dose/exams/{}", exam["id"]));
        let events = detail["report"]["events"].as_array().expect("events");
        let expected = file["events"].as_array().expect("events");
        assert_eq!(events.len(), expected.len(), "{}", file["path"]);
        for want in expected {
            let got = events.iter().find(|e| e["uid"] == want["uid"]).expect("the same event");
            for (ours, theirs) in [("dap", "dap"), ("dose_rp", "dose_rp"), ("kvp", "kvp")] {
                assert!(off(&got["data"][ours], &want[theirs]) < 1e-9, "{ours} of {}: {got} vs {want}", file["path"]);
            }
        }
        for metric in ["dap", "dose_rp", "fluoro_time"] {
            assert!(off(&exam[metric], &file["totals"][metric]) < 1e-9, "{metric} of {}: {exam}", file["path"]);
        }
        assert!(
            detail["device"]["manufacturer"]
                .as_str()
                .is_some_and(|m| m.starts_with(file["manufacturer"].as_str().unwrap_or("?")))
        );
    }
    // Siemens' "Gym2" is read as Gy·m² and noted.
    let siemens =
        exams.as_array().into_iter().flatten().find(|e| e["device"]["manufacturer"] == "Siemens").expect("Siemens");
    let notes = get(&format!("/api/dose/exams/{}", siemens["id"]))["report"]["notes"].to_string();
    assert!(notes.contains("Gym2"), "{notes}");
}
