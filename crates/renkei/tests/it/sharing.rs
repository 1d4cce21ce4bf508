//! Sharing between facilities end to end: east publishes a study over the sharing API; west
//! and north look over DIMSE (DCMTK findscu/getscu) and DICOMweb (dicomweb-client).

use crate::dicomweb::{request, token};
use crate::harness::*;
use crate::mpi::{PATIENTS, match_parameters, matched, members, person_of, store, study_of};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn study_uid(n: u64) -> String {
    renkei_testkit::generate::uid(7_000 + n, 0)
}

/// The findscu responses (one block each) of a Study Root STUDY-level query.
fn studies_seen(hub: &Hub, calling: &str) -> Vec<String> {
    let keys = [
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "InstitutionName",
        "SpecificCharacterSet=ISO_IR 192",
    ];
    let output = findscu(hub, "-S", calling, &keys);
    assert!(output.status.success(), "{}", text(&output));
    text(&output).split("Find Response:").skip(1).map(str::to_owned).collect()
}

fn seen<'a>(responses: &'a [String], study: &str) -> Option<&'a String> {
    responses.iter().find(|r| r.contains(study))
}

struct Api<'a> {
    hub: &'a Hub,
    bearer: String,
}

impl Api<'_> {
    fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let headers = [("Authorization", self.bearer.as_str()), ("Content-Type", "application/json")];
        let (status, _, body) = request(self.hub, "POST", path, &headers, body.to_string().as_bytes());
        (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
    }

    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = request(self.hub, "GET", path, &[("Authorization", self.bearer.as_str())], &[]);
        (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
    }
}

fn api<'a>(fixture: &Fixture, hub: &'a Hub, who: &[&str]) -> Api<'a> {
    Api { hub, bearer: format!("Bearer {}", token(fixture, who)) }
}

fn publication(study: Option<&str>, to: serde_json::Value, ends_at: i64) -> serde_json::Value {
    serde_json::json!({
        "patient_id": "E-001",
        "study_uid": study,
        "to": to,
        "starts_at": now() - 60,
        "ends_at": ends_at,
        "consent": { "given_by": "本人", "given_at": now(), "scope": "紹介先への画像共有" },
        "by": "dr.tanaka",
    })
}

/// Waits until the audit lists `count` accesses matching `wanted`.
fn audited(fixture: &Fixture, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let audit = fixture.admin(&["share", "audit"]);
        if audit.lines().any(&wanted) {
            return audit;
        }
        assert!(std::time::Instant::now() < deadline, "not audited:\n{audit}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn published_studies_appear_under_the_linked_local_patient_and_nowhere_else() {
    let fixture = Fixture::new();
    fixture.admin(&["facility", "add", "north", "--name", "North Hospital", "--ae", "NORTHSCU"]);
    let hub = fixture.serve(&fixture.data_dir);
    let dir = fixture.root.path().join("sharing");
    let patient = |id: &str| PATIENTS.iter().find(|p| p.2 == id).expect("known patient");
    let east_study = study_uid(patient("E-001").0);
    let store_patient = |id: &str| {
        let (n, _, id, name) = patient(id);
        study_of(&dir, *n, id, name, "19800102", "F")
    };
    let east_file = store_patient("E-001");
    store(&hub, "EASTPY", &east_file);
    store(&hub, "WESTSCU", &store_patient("W-902"));
    matched(&fixture);

    // East publishes the study to west, with the patient's consent (not with a viewer's
    // token).
    let viewer = api(&fixture, &hub, &["--facility", "east"]);
    let asked = publication(Some(&east_study), serde_json::json!(["west"]), now() + 3600);
    assert_eq!(viewer.post("/api/sharing/publications", asked).0, 403);
    let east = api(&fixture, &hub, &["--facility", "east", "--role", "uploader"]);
    let (status, published) = east
        .post("/api/sharing/publications", publication(Some(&east_study), serde_json::json!(["west"]), now() + 3600));
    assert_eq!(status, 201, "{published}");
    let id = published["id"].as_i64().expect("publication id");
    for (bad, why) in [
        (publication(Some(&east_study), serde_json::json!(["east"]), now() + 60), "to itself"),
        (publication(Some(&east_study), serde_json::json!("group"), now() - 120), "ends before it starts"),
        (publication(Some("1.2.3"), serde_json::json!("group"), now() + 60), "not east's study"),
    ] {
        let (status, body) = east.post("/api/sharing/publications", bad);
        assert!(matches!(status, 400 | 404), "{why}: {status} {body}");
    }
    let west = api(&fixture, &hub, &["--facility", "west", "--role", "uploader"]);
    let mut as_west = publication(Some(&east_study), serde_json::json!("group"), now() + 60);
    as_west["facility"] = "east".into();
    assert_eq!(west.post("/api/sharing/publications", as_west).0, 403, "west cannot publish east's studies");

    // West's patient there is her twin, not her: nothing to see.
    let responses = studies_seen(&hub, "WESTSCU");
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert!(seen(&responses, &east_study).is_none(), "not linked → invisible");

    // Once west has her as its own patient (linked automatically), east's study is in its
    // results, under west's patient ID and marked as east's.
    store(&hub, "WESTSCU", &store_patient("W-901"));
    let north_file = study_of(&dir, 11, "N-1", "Takada^Hanako=高田^花子=タカダ^ハナコ", "19800102", "F");
    store(&hub, "NORTHSCU", &north_file);
    matched(&fixture);
    let linked = members(&person_of(&fixture, "east", "E-001"));
    assert!(linked.contains(&("west".into(), "W-901".into())) && linked.contains(&("north".into(), "N-1".into())));
    let responses = studies_seen(&hub, "WESTSCU");
    let shared = seen(&responses, &east_study).expect("linked and published → visible");
    assert!(shared.contains("[W-901") && !shared.contains("E-001"), "under west's patient ID: {shared}");
    assert!(shared.contains("ﾀｶﾀﾞ^ﾊﾅｺ"), "and west's patient name: {shared}");
    assert!(shared.contains("[East Hospital"), "marked by origin: {shared}");
    assert!(seen(&studies_seen(&hub, "NORTHSCU"), &east_study).is_none(), "north is not in the audience");

    // C-GET brings the objects relabelled; east's stored object is untouched.
    let got = fixture.root.path().join("got-west");
    std::fs::create_dir_all(&got).expect("dir");
    let output =
        getscu(&hub, "WESTSCU", &got, &["QueryRetrieveLevel=STUDY", &format!("StudyInstanceUID={east_study}")]);
    assert!(output.status.success(), "{}", text(&output));
    let received = std::fs::read_dir(&got).expect("dir").next().expect("one object").expect("entry").path();
    let dump = text(&dcmtk("dcmdump", &[received.to_str().expect("utf-8")]));
    assert!(dump.contains("(0010,0020) LO [W-901]"), "{dump}");
    assert!(dump.contains("(0010,1002) SQ") && dump.contains("[E-001]") && dump.contains("[east]"), "{dump}");
    assert!(blobs(&fixture.data_dir).contains(&dataset_bytes(&east_file)), "the stored object stays as received");
    let east_own = studies_seen(&hub, "EASTPY");
    assert!(seen(&east_own, &east_study).is_some_and(|r| r.contains("[E-001") && !r.contains("East Hospital")));

    // C-MOVE to a west workstation that takes Implicit VR Little Endian only: transcoded,
    // then relabelled.
    let moved = fixture.root.path().join("moved-west");
    std::fs::create_dir_all(&moved).expect("dir");
    let port = free_port();
    let mut storescp = std::process::Command::new("/usr/bin/storescp")
        .args(["-aet", "WESTVIEW", "+xi", "-od"])
        .arg(&moved)
        .arg(port.to_string())
        .spawn()
        .expect("storescp starts");
    fixture.admin(&[
        "node",
        "add",
        "WESTVIEW",
        "--facility",
        "west",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    let output =
        movescu(&hub, "WESTSCU", "WESTVIEW", &["QueryRetrieveLevel=STUDY", &format!("StudyInstanceUID={east_study}")]);
    let _ = storescp.kill();
    let _ = storescp.wait();
    assert!(output.status.success(), "{}", text(&output));
    let received = std::fs::read_dir(&moved).expect("dir").next().expect("one object").expect("entry").path();
    let dump = text(&dcmtk("dcmdump", &[received.to_str().expect("utf-8")]));
    assert!(dump.contains("(0010,0020) LO [W-901]") && dump.contains("=LittleEndianImplicit"), "{dump}");

    // The same over DICOMweb, with dicomweb-client.
    let bearer = west.bearer.trim_start_matches("Bearer ").to_owned();
    let output = python("shared_dicomweb.py", &[&format!("http://{}", hub.http), &bearer]);
    let found: serde_json::Value = serde_json::from_str(text(&output).trim()).expect("json");
    let study = found["studies"].as_array().expect("studies").iter().find(|s| s["uid"] == east_study.as_str());
    let study = study.unwrap_or_else(|| panic!("QIDO-RS shows east's study: {found}"));
    assert_eq!((study["patient_id"].as_str(), study["institution"].as_str()), (Some("W-901"), Some("East Hospital")));
    assert_eq!(found["retrieved"][&east_study], serde_json::json!([["W-901", "E-001"]]), "{found}");
    assert_eq!(found["metadata"][&east_study], serde_json::json!(["W-901"]), "{found}");
    let n = patient("E-001").0;
    let (series, sop) = (renkei_testkit::generate::uid(7_000 + n, 1), renkei_testkit::generate::uid(7_000 + n, 2));
    let bulk = |range: String| {
        let path = format!("/dicom-web/studies/{east_study}/series/{series}/instances/{sop}/bulkdata/{range}");
        request(&hub, "GET", &path, &[("Authorization", west.bearer.as_str())], &[]).0
    };
    assert_eq!(bulk("0-16".into()), 200, "bytes before the patient module");
    let size = dataset_bytes(&east_file).len();
    assert_eq!(bulk(format!("0-{size}")), 404, "the stored patient module cannot be read around the relabelling");

    // Every access is audited: who, how, which study, on what grant.
    let grant = format!("(publication {id})");
    let audit = audited(&fixture, |l| l.contains("via DICOMweb") && l.contains("retrieve"));
    for (kind, via) in [("query", "via DICOM WESTSCU"), ("retrieve", "via DICOM WESTSCU"), ("query", "via DICOMweb")] {
        assert!(
            audit.lines().any(|l| l.contains("west ← east")
                && l.contains(&east_study)
                && l.contains(kind)
                && l.contains(via)
                && l.ends_with(&grant)),
            "{kind} {via}:\n{audit}"
        );
    }

    // Revoked: gone at once. Only east may revoke it.
    let revocation = serde_json::json!({ "by": "dr.tanaka", "reason": "consent withdrawn" });
    let path = format!("/api/sharing/publications/{id}/revoke");
    assert_eq!(west.post(&path, revocation.clone()).0, 404, "not west's to revoke");
    assert_eq!(east.post(&path, revocation).0, 200);
    assert!(seen(&studies_seen(&hub, "WESTSCU"), &east_study).is_none(), "revoked → invisible");
    let (_, listed) = east.get("/api/sharing/publications");
    assert_eq!(listed[0]["revoked"]["by"]["why"], "consent withdrawn", "{listed}");
    assert_eq!(listed[0]["current"], false, "{listed}");

    // Every study of hers, to the whole group, for two seconds: visible, then expired.
    let (status, body) =
        east.post("/api/sharing/publications", publication(None, serde_json::json!("group"), now() + 2));
    assert_eq!(status, 201, "{body}");
    assert!(seen(&studies_seen(&hub, "NORTHSCU"), &east_study).is_some(), "the group includes north");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(seen(&studies_seen(&hub, "NORTHSCU"), &east_study).is_none(), "expired → invisible");

    // Break-glass: north's clinician states a reason and sees all of her studies, flagged.
    let north = api(&fixture, &hub, &["--facility", "north"]);
    let (status, _) = north
        .post("/api/sharing/break-glass", serde_json::json!({ "patient_id": "N-1", "reason": " ", "by": "dr.kato" }));
    assert_eq!(status, 400, "a reason is required");
    let emergency =
        serde_json::json!({ "patient_id": "N-1", "reason": "脳卒中で救急搬送、意識なし", "by": "dr.kato", "hours": 4 });
    let (status, opened) = north.post("/api/sharing/break-glass", emergency);
    assert_eq!(status, 201, "{opened}");
    let responses = studies_seen(&hub, "NORTHSCU");
    let west_study = study_uid(patient("W-901").0);
    for study in [&east_study, &west_study] {
        assert!(seen(&responses, study).is_some_and(|r| r.contains("[N-1")), "break-glass → visible: {responses:?}");
    }
    assert!(seen(&responses, &study_uid(patient("W-902").0)).is_none(), "only her person's studies");
    let audit = audited(&fixture, |l| l.contains("north ← ") && l.contains("BREAK-GLASS"));
    assert!(audit.lines().any(|l| l.contains("north ← west") && l.contains(&west_study)), "{audit}");
    let flagged = fixture.admin(&["share", "flagged"]);
    assert!(flagged.contains("north/N-1") && flagged.contains("脳卒中"), "{flagged}");

    // Only an administrator clears the flag.
    let review = serde_json::json!({ "by": "security officer", "note": "ER log confirms the transfer" });
    let path = format!("/api/sharing/break-glass/{}/review", opened["id"]);
    assert_eq!(north.post(&path, review.clone()).0, 403);
    let admin = api(&fixture, &hub, &["--admin"]);
    assert_eq!(admin.post(&path, review).0, 200);
    assert_eq!(fixture.admin(&["share", "flagged"]).trim(), "");
    let (_, accesses) = north.get("/api/sharing/accesses");
    assert!(accesses.as_array().is_some_and(|a| !a.is_empty()), "{accesses}");

    // Reviewed is not closed: north still sees her studies until it closes the access.
    assert!(seen(&studies_seen(&hub, "NORTHSCU"), &east_study).is_some());
    let closing = serde_json::json!({ "by": "dr.kato", "reason": "patient stable, records received" });
    let path = format!("/api/sharing/break-glass/{}/close", opened["id"]);
    assert_eq!(west.post(&path, closing.clone()).0, 404, "not west's to close");
    assert_eq!(north.post(&path, closing).0, 200);
    assert!(seen(&studies_seen(&hub, "NORTHSCU"), &east_study).is_none(), "closed → invisible");
}

/// The console's sharing pages in Debian's headless Chromium: publish, link the referral,
/// see, revoke, break the glass, review, close.
#[test]
fn sharing_works_in_the_console() {
    let fixture = Fixture::new();
    let hub = fixture.serve(&fixture.data_dir);
    let dir = fixture.root.path().join("sharing");
    for (n, calling, id, name) in PATIENTS.iter().filter(|p| ["E-001", "W-903"].contains(&p.2)) {
        store(&hub, calling, &study_of(&dir, *n, id, name, "19800102", "F"));
    }
    matched(&fixture);
    let (east, west, admin) = (
        token(&fixture, &["--facility", "east", "--role", "uploader"]),
        token(&fixture, &["--facility", "west", "--role", "uploader"]),
        token(&fixture, &["--admin"]),
    );
    let shots = ["publish.png", "referral.png", "shared.png", "break-glass.png", "audit.png"];
    let study = study_uid(PATIENTS[0].0);
    run_console_script(&fixture, &hub, "sharing.test.mjs", &east, &[&west, &admin, &study], "sharing ok", &shots);
    let shown = person_of(&fixture, "east", "E-001");
    assert!(members(&shown).contains(&("west".into(), "W-903".into())), "linked in the console: {shown}");
    let listed = fixture.admin(&["share", "list"]);
    assert!(listed.contains("revoked by dr.tanaka") && listed.contains("(同意撤回)"), "{listed}");
    assert_eq!(fixture.admin(&["share", "flagged"]).trim(), "", "reviewed in the console");
    let audit = fixture.admin(&["share", "audit"]);
    assert!(audit.lines().any(|l| l.starts_with(char::is_numeric) && l.contains("BREAK-GLASS")), "{audit}");
}

/// The referral as the issue tells it: east publishes, west finds her with `$match` among
/// the patients shared with it, links its own record to hers, and sees her studies.
#[test]
fn a_receiving_facility_finds_a_referral_and_links_it() {
    let fixture = Fixture::new();
    let hub = fixture.serve(&fixture.data_dir);
    let dir = fixture.root.path().join("referral");
    let married = PATIENTS.iter().find(|p| p.2 == "W-903").expect("W-903");
    store(&hub, "EASTPY", &study_of(&dir, PATIENTS[0].0, "E-001", PATIENTS[0].3, "19800102", "F"));
    store(&hub, "WESTSCU", &study_of(&dir, married.0, "W-903", married.3, "19800102", "F"));
    matched(&fixture);
    let east_study = study_uid(PATIENTS[0].0);
    let east = api(&fixture, &hub, &["--facility", "east", "--role", "uploader"]);
    let west = api(&fixture, &hub, &["--facility", "west", "--role", "uploader"]);

    // West's clerk looks for its patient (married name) among the patients it may see.
    let wanted = match_parameters(("佐藤", "花子"), ("サトウ", "ハナコ"));
    let candidates = || {
        let (status, bundle) = west.post("/fhir/Patient/$match", wanted.clone());
        assert_eq!(status, 200, "{bundle}");
        bundle["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (
                            e["resource"]["identifier"][0]["value"].as_str().unwrap_or("").to_owned(),
                            e["resource"]["id"].clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let found = candidates();
    assert!(found.iter().all(|(id, _)| id != "E-001"), "east's patient is not shared with west yet: {found:?}");

    let (status, body) =
        east.post("/api/sharing/publications", publication(None, serde_json::json!(["west"]), now() + 3600));
    assert_eq!(status, 201, "{body}");
    let found = candidates();
    let record = |wanted: &str| {
        let id = found.iter().find(|(id, _)| id == wanted).map(|(_, record)| record.clone());
        id.unwrap_or_else(|| panic!("{wanted} among {found:?}"))
            .as_str()
            .and_then(|id| id.parse::<i64>().ok())
            .expect("id")
    };
    let (own, referred) = (record("W-903"), record("E-001"));
    let (status, _, body) =
        request(&hub, "GET", &format!("/fhir/Patient/{referred}"), &[("Authorization", west.bearer.as_str())], &[]);
    assert_eq!(status, 200, "a shared patient can be read: {body}");
    assert!(seen(&studies_seen(&hub, "WESTSCU"), &east_study).is_none(), "published, but not linked yet");

    // West links its record to hers (not two records neither of which is its own).
    let decision = |a: i64, b: i64| serde_json::json!({ "a": a, "b": b, "decision": "same", "reason": "紹介状で本人確認（旧姓 高田）", "reviewer": "clerk" });
    let (status, body) = west.post("/api/mpi/decisions", decision(referred, referred));
    assert_eq!(status, 400, "neither record is west's: {body}");
    let mut different = decision(own, referred);
    different["decision"] = "different".into();
    let (status, body) = west.post("/api/mpi/decisions", different);
    assert_eq!(status, 400, "unlinking is an administrator's: {body}");
    let viewer = api(&fixture, &hub, &["--facility", "west"]);
    assert_eq!(viewer.post("/api/mpi/decisions", decision(own, referred)).0, 403, "not with a viewer's token");
    let (status, body) = west.post("/api/mpi/decisions", decision(own, referred));
    assert_eq!(status, 202, "{body}");
    matched(&fixture);
    let shown = person_of(&fixture, "east", "E-001");
    assert!(members(&shown).contains(&("west".into(), "W-903".into())), "{shown}");
    assert!(shown.contains("clerk (west uploader token)"), "the link says who made it: {shown}");
    let responses = studies_seen(&hub, "WESTSCU");
    let shared = seen(&responses, &east_study).expect("linked and published → visible");
    assert!(shared.contains("[W-903") && shared.contains("佐藤"), "under west's patient: {shared}");
}
