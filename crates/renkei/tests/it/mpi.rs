//! The master patient index end to end: patients arrive over C-STORE at two facilities,
//! the server's matcher links them, and people's decisions change the persons.

use crate::harness::*;

/// A one-slice study of a patient, as a Part-10 file.
pub(crate) fn study_of(
    dir: &std::path::Path,
    n: u64,
    patient_id: &str,
    name: &str,
    birth_date: &str,
    sex: &str,
) -> std::path::PathBuf {
    use renkei_testkit::generate::{CT_IMAGE, Patient, ct_slice, dataset, part10, uid};
    std::fs::create_dir_all(dir).expect("dir");
    let mut spec = ct_slice(16, 70_000 + n);
    spec.patient = Patient {
        id: patient_id.into(),
        name: name.into(),
        birth_date: birth_date.into(),
        sex: sex.into(),
        character_set: Some("ISO_IR 192".into()),
    };
    spec.study_uid = uid(7_000 + n, 0);
    spec.series_uid = uid(7_000 + n, 1);
    spec.sop_instance_uid = uid(7_000 + n, 2);
    let bytes = part10(&dataset(&spec), CT_IMAGE, &spec.sop_instance_uid, &spec.transfer_syntax);
    let path = dir.join(format!("{n}.dcm"));
    std::fs::write(&path, bytes).expect("write");
    path
}

pub(crate) fn store(hub: &Hub, calling: &str, file: &std::path::Path) {
    let path = file.to_str().expect("utf-8");
    let output = python("send_raw.py", &["127.0.0.1", &hub.port(), calling, "RENKEI", path]);
    assert!(text(&output).contains("\"status\": 0"), "{}", text(&output));
}

/// East's patient; west's record of her in half-width kana with 髙 for 高; her twin at west;
/// and a west record under her married name. All female, born 1980-01-02.
pub(crate) const PATIENTS: [(u64, &str, &str, &str); 4] = [
    (1, "EASTPY", "E-001", "Takada^Hanako=高田^花子=タカダ^ハナコ"),
    (2, "WESTSCU", "W-901", "TAKADA^HANAKO=髙田^花子=ﾀｶﾀﾞ^ﾊﾅｺ"),
    (3, "WESTSCU", "W-902", "Takada^Momoko=高田^桃子=タカダ^モモコ"),
    (4, "WESTSCU", "W-903", "Sato^Hanako=佐藤^花子=サトウ^ハナコ"),
];

/// Stores those of [`PATIENTS`] named by `ids` and waits until they are matched.
fn store_patients(fixture: &Fixture, hub: &Hub, ids: &[&str]) {
    let dir = fixture.root.path().join("mpi");
    for (n, calling, id, name) in PATIENTS.iter().filter(|p| ids.contains(&p.2)) {
        store(hub, calling, &study_of(&dir, *n, id, name, "19800102", "F"));
    }
    matched(fixture);
}

/// Waits until the server's matcher has matched every record.
pub(crate) fn matched(fixture: &Fixture) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = fixture.admin(&["mpi", "status"]);
        if status.lines().any(|l| l.starts_with("pending") && l.trim_end().ends_with(" 0")) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "records still pending: {status}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub(crate) fn person_of(fixture: &Fixture, facility: &str, patient_id: &str) -> String {
    fixture.admin(&["mpi", "show", facility, patient_id])
}

/// The records listed under a person (facility, patient ID).
pub(crate) fn members(shown: &str) -> Vec<(String, String)> {
    shown
        .lines()
        .take_while(|l| *l != "links")
        .skip(1)
        .map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next().unwrap_or_default().to_owned(), fields.next().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn patients_are_linked_across_facilities_and_people_decide_the_rest() {
    let fixture = Fixture::new();
    let hub = fixture.serve(&fixture.data_dir);
    let dir = fixture.root.path().join("mpi");
    store_patients(&fixture, &hub, &["E-001", "W-901", "W-902", "W-903"]);

    let shown = person_of(&fixture, "east", "E-001");
    let linked = members(&shown);
    assert!(linked.contains(&("west".into(), "W-901".into())), "variants link automatically:\n{shown}");
    assert!(!linked.iter().any(|(_, id)| id == "W-902"), "the twin stays apart:\n{shown}");
    assert!(!linked.iter().any(|(_, id)| id == "W-903"), "a new surname is not linked by itself:\n{shown}");
    assert!(
        shown.lines().any(|l| l.contains("candidate") && l.contains("west/W-903")),
        "but waits for review:\n{shown}"
    );
    let status = fixture.admin(&["mpi", "status"]);
    assert!(
        status.lines().any(|l| l.starts_with("persons across facilities") && l.trim_end().ends_with(" 1")),
        "{status}"
    );
    fhir_match_and_read(&fixture, &hub);

    // A clerk confirms the marriage from the review queue: the record joins the person.
    accept_from_the_review_queue(&fixture, &hub, "W-903");
    matched(&fixture);
    let shown = person_of(&fixture, "east", "E-001");
    assert!(members(&shown).contains(&("west".into(), "W-903".into())), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("  manual") && l.contains("clerk (administrator's token) (married 2024)")),
        "{shown}"
    );

    // Unlinking the variant record keeps it apart from then on, and the history says who.
    fixture.admin(&["mpi", "decide", "different", "east/E-001", "west/W-901", "--reason", "wrong chart", "--by", "dr"]);
    matched(&fixture);
    let shown = person_of(&fixture, "east", "E-001");
    assert!(!members(&shown).iter().any(|(_, id)| id == "W-901"), "{shown}");
    assert!(shown.lines().any(|l| l.contains("auto") && l.contains("retired by dr (wrong chart)")), "{shown}");
    // Its own person is now a different one.
    assert_ne!(person_of(&fixture, "west", "W-901").lines().next(), shown.lines().next());

    // A changed birth date makes a record pending again, and it is matched again.
    store(&hub, "WESTSCU", &study_of(&dir, 5, "W-902", "Takada^Momoko=高田^桃子=タカダ^モモコ", "19800103", "F"));
    matched(&fixture);
    let twin = person_of(&fixture, "west", "W-902");
    assert_eq!(members(&twin).len(), 1, "{twin}");

    // A rebuild links everything again from scratch; people's decisions stand.
    drop(hub);
    let rebuilt = fixture.admin(&["mpi", "rebuild"]);
    assert!(rebuilt.starts_with("linked ") && rebuilt.contains("model shipped"), "{rebuilt}");
    let shown = person_of(&fixture, "east", "E-001");
    let linked = members(&shown);
    assert!(
        linked.contains(&("west".into(), "W-903".into())) && !linked.iter().any(|(_, id)| id == "W-901"),
        "{shown}"
    );

    // Scored against a truth in which W-901 is her after all: the unlink cost recall.
    let truth = fixture.root.path().join("truth.tsv");
    std::fs::write(
        &truth,
        "facility\tpatient_id\tperson\neast\tE-001\tA\nwest\tW-901\tA\nwest\tW-903\tA\nwest\tW-902\tB\n",
    )
    .expect("truth");
    let report = fixture.admin(&["mpi", "evaluate", truth.to_str().expect("utf-8")]);
    assert!(report.contains("records 4  true pairs 3  missing from the index 0"), "{report}");
    let clusters = report.lines().find(|l| l.starts_with("clusters, auto-link")).expect("clusters line");
    let numbers: Vec<&str> = clusters.split_whitespace().rev().take(5).collect();
    // predicted 1 pair (E-001–W-903), correct 1: precision 1, recall 1/3.
    assert_eq!(numbers, ["0.5000", "0.3333", "1.0000", "1", "1"], "{report}");
}

/// The `Patient/$match` parameters for a woman born 1980-01-02, by her kanji and kana names
/// (family, given), one JP Core `HumanName` each.
pub(crate) fn match_parameters(kanji: (&str, &str), kana: (&str, &str)) -> serde_json::Value {
    let representation = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
    let name = |code: &str, (family, given): (&str, &str)| serde_json::json!({ "extension": [{ "url": representation, "valueCode": code }], "family": family, "given": [given] });
    serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [{ "name": "resource", "resource": {
            "resourceType": "Patient",
            "name": [name("IDE", kanji), name("SYL", kana)],
            "birthDate": "1980-01-02",
            "gender": "female",
        }}],
    })
}

/// FHIR `Patient/$match` and read, as each facility and an administrator see them.
fn fhir_match_and_read(fixture: &Fixture, hub: &Hub) {
    use crate::dicomweb::{request, token};
    let east = format!("Bearer {}", token(fixture, &["--facility", "east"]));
    let west = format!("Bearer {}", token(fixture, &["--facility", "west"]));
    let admin = format!("Bearer {}", token(fixture, &["--admin"]));
    let wanted = match_parameters(("高田", "花子"), ("タカダ", "ハナコ")).to_string();
    let search = |bearer: &str| {
        let headers = [("Authorization", bearer), ("Content-Type", "application/fhir+json")];
        let (status, head, body) = request(hub, "POST", "/fhir/Patient/$match", &headers, wanted.as_bytes());
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/fhir+json"), "{head}");
        serde_json::from_str::<serde_json::Value>(&body).expect("a Bundle")
    };
    let identifier =
        |entry: &serde_json::Value| entry["resource"]["identifier"][0]["value"].as_str().unwrap_or("").to_owned();
    let grade =
        |entry: &serde_json::Value| entry["search"]["extension"][0]["valueCode"].as_str().unwrap_or("").to_owned();

    // East sees her as its own record, certain, with the score explained field by field.
    let bundle = search(&east);
    assert_eq!((bundle["resourceType"].as_str(), bundle["type"].as_str()), (Some("Bundle"), Some("searchset")));
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.iter().map(identifier).collect::<Vec<_>>(), ["E-001"], "{bundle}");
    assert_eq!(grade(&entries[0]), "certain");
    assert!(entries[0]["search"]["score"].as_f64().expect("score") > 0.99);
    let explained = entries[0]["search"]["extension"][1]["extension"].as_array().expect("explanation");
    assert!(
        explained
            .iter()
            .any(|e| e["url"] == "birth date" && e["valueString"].as_str().unwrap_or("").starts_with("exact"))
    );
    let patient = &entries[0]["resource"];
    assert_eq!(patient["birthDate"], "1980-01-02");
    assert!(patient["link"].as_array().is_none(), "east may not see west's record: {patient}");

    // West sees its own records of her: the linked one first; the married name is its own
    // person, in review; the twin does not match.
    let bundle = search(&west);
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.iter().map(identifier).collect::<Vec<_>>(), ["W-901", "W-903"], "{bundle}");
    assert!(matches!(grade(&entries[1]).as_str(), "probable" | "possible"), "{bundle}");

    // An administrator sees each person once, and the links between records.
    let bundle = search(&admin);
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{bundle}");
    let id = entries[0]["resource"]["id"].as_str().expect("id").to_owned();
    assert_eq!(entries[0]["resource"]["link"][0]["type"], "seealso", "{bundle}");

    // Read: a facility reads its own patients only.
    let path = format!("/fhir/Patient/{id}");
    let owner = if identifier(&entries[0]).starts_with('E') { &east } else { &west };
    let stranger = if owner == &east { &west } else { &east };
    let (status, _, body) = request(hub, "GET", &path, &[("Authorization", owner)], &[]);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(hub, "GET", &path, &[("Authorization", stranger)], &[]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("OperationOutcome"), "{body}");
    let (status, _, body) =
        request(hub, "POST", "/fhir/Patient/$match", &[("Authorization", &east)], b"{\"resourceType\":\"Bundle\"}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("OperationOutcome") && body.contains("Parameters"), "{body}");
    let (status, _, _) = request(hub, "POST", "/fhir/Patient/$match", &[], wanted.as_bytes());
    assert_eq!(status, 401);
}

/// Finds the review task that pairs `patient_id` with another record, over the admin API,
/// and accepts it.
fn accept_from_the_review_queue(fixture: &Fixture, hub: &Hub, patient_id: &str) {
    use crate::dicomweb::{request, token};
    let admin = format!("Bearer {}", token(fixture, &["--admin"]));
    let east = format!("Bearer {}", token(fixture, &["--facility", "east"]));
    let (status, _, body) = request(hub, "GET", "/api/mpi/review", &[("Authorization", &east)], &[]);
    assert_eq!(status, 403, "facility tokens may not review: {body}");
    let (status, _, body) = request(hub, "GET", "/api/mpi/review", &[("Authorization", &admin)], &[]);
    assert_eq!(status, 200, "{body}");
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&body).expect("review tasks");
    let task = tasks
        .iter()
        .find(|t| t["a"]["patient_id"] == patient_id || t["b"]["patient_id"] == patient_id)
        .and_then(|t| (t["a"]["facility"] == "east" || t["b"]["facility"] == "east").then_some(t))
        .unwrap_or_else(|| panic!("no review task for {patient_id} with east: {body}"));
    assert!(matches!(task["score"]["grade"].as_str(), Some("probable" | "possible")), "{task}");
    let family = task["score"]["terms"].as_array().expect("terms").iter().find(|t| t["field"] == "family name");
    assert_eq!(family.expect("family name term")["level"], "different", "{task}");

    let decision = serde_json::json!({
        "a": task["a"]["id"], "b": task["b"]["id"], "decision": "same",
        "reason": "married 2024", "reviewer": "clerk",
    })
    .to_string();
    let headers = [("Authorization", admin.as_str()), ("Content-Type", "application/json")];
    let (status, _, body) = request(hub, "POST", "/api/mpi/decisions", &headers, decision.as_bytes());
    assert_eq!(status, 202, "{body}");
    let (status, head, body) = request(hub, "POST", "/api/mpi/decisions", &headers, b"{\"a\": 1}");
    assert_eq!(status, 400, "{body}");
    assert!(head.to_ascii_lowercase().contains("application/problem+json"), "{head}");
}

/// The console's review queue and person view, driven in Debian's headless Chromium by an
/// administrator who accepts the married name.
#[test]
fn the_review_queue_works_in_the_console() {
    let fixture = Fixture::new();
    let hub = fixture.serve(&fixture.data_dir);
    store_patients(&fixture, &hub, &["E-001", "W-901", "W-903"]);
    let admin = crate::dicomweb::token(&fixture, &["--admin"]);
    let (status, _, body) = crate::dicomweb::request(
        &hub,
        "GET",
        "/api/mpi/lookup?facility=east&patient_id=E-001",
        &[("Authorization", &format!("Bearer {admin}"))],
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let east_record = serde_json::from_str::<serde_json::Value>(&body).expect("record")["id"].to_string();
    let shots = ["review.png", "person.png"];
    run_console_script(&fixture, &hub, "mpi.test.mjs", &admin, &["W-903", &east_record], "review ok", &shots);
    matched(&fixture);
    let shown = person_of(&fixture, "east", "E-001");
    assert!(members(&shown).contains(&("west".into(), "W-903".into())), "{shown}");
    assert!(shown.contains("clerk (administrator's token) (married 2024)"), "{shown}");
    // Unlinked, then linked by hand: the automatic link is retired, a manual one stands.
    assert!(members(&shown).contains(&("west".into(), "W-901".into())), "{shown}");
    assert!(shown.lines().any(|l| l.contains("auto") && l.contains("(wrong chart)")), "{shown}");
    assert!(shown.lines().any(|l| l.starts_with("  manual") && l.contains("west/W-901")), "{shown}");
}
