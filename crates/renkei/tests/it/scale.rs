//! Group scale: a PostgreSQL index shared by several nodes.

use renkei_store_postgres::cluster::Cluster;

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

/// Writes `count` CT slices of one study of the tier test's patient, dated `date`, as
/// Part-10 files under `dir`; returns their paths.
fn write_study(dir: &std::path::Path, study: u64, date: &str, count: u64) -> Vec<std::path::PathBuf> {
    use renkei_testkit::generate::{CT_IMAGE, Patient, ct_slice, dataset, part10, uid};
    std::fs::create_dir_all(dir).expect("dir");
    (0..count)
        .map(|n| {
            let mut spec = ct_slice(64, study * 10_000 + n);
            spec.patient = Patient {
                id: "TIER01".into(),
                name: "Suzuki^Hanako=鈴木^花子=すずき^はなこ".into(),
                birth_date: "19550505".into(),
                sex: "F".into(),
                character_set: None,
            };
            spec.study_uid = uid(900 + study, 0);
            spec.series_uid = uid(900 + study, 1);
            spec.sop_instance_uid = uid(900 + study, 100 + n);
            spec.study_date = date.into();
            let bytes = part10(&dataset(&spec), CT_IMAGE, &spec.sop_instance_uid, &spec.transfer_syntax);
            let path = dir.join(format!("{}.dcm", spec.sop_instance_uid));
            std::fs::write(&path, bytes).expect("write slice");
            path
        })
        .collect()
}

fn send(hub: &Hub, files: &[std::path::PathBuf]) {
    let mut args = vec!["127.0.0.1".to_owned(), hub.port(), "EASTPY".into(), "RENKEI".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = python("send_raw.py", &refs);
    let stored = text(&output).lines().filter(|l| l.contains("\"status\": 0")).count();
    assert_eq!(stored, files.len(), "{}", text(&output));
}

/// An old study and a new one: what the hub should hold of them.
struct TierFixture {
    fixture: Fixture,
    s3: renkei_testkit::s3::S3Server,
    /// Whether the hot tier is the S3 server's hot bucket rather than the data directory.
    hot_bucket: bool,
    old: Vec<std::path::PathBuf>,
    old_study: String,
    new_study: String,
}

impl TierFixture {
    /// Stores a study dated four years ago (`old_slices` slices) and one dated today.
    fn stored(old_slices: u64) -> (TierFixture, Hub) {
        Self::stored_in(Fixture::new(), old_slices, false)
    }

    /// The same, on the given fixture's index, with the hot tier in a bucket if `hot_bucket`.
    fn stored_in(fixture: Fixture, old_slices: u64, hot_bucket: bool) -> (TierFixture, Hub) {
        use renkei_domain::tier::{date_key, years_before};
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let s3 = renkei_testkit::s3::S3Server::start().expect("a real S3 server on loopback");
        let old = write_study(&fixture.root.path().join("old"), 1, &years_before(now, 4), old_slices);
        let new = write_study(&fixture.root.path().join("new"), 2, &date_key(now), 3);
        let old_study = renkei_testkit::generate::uid(901, 0);
        let new_study = renkei_testkit::generate::uid(902, 0);
        let tiers = TierFixture { fixture, s3, hot_bucket, old, old_study, new_study };
        let hub = tiers.serve(&tiers.fixture.data_dir);
        send(&hub, &tiers.old);
        send(&hub, &new);
        (tiers, hub)
    }

    /// The environment that points `renkei` at the buckets.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.s3.env();
        if self.hot_bucket {
            env.extend(self.s3.hot_env());
        }
        env
    }

    /// A node on this fixture's index and buckets, with its data directory at `data_dir`.
    fn serve(&self, data_dir: &std::path::Path) -> Hub {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = self.fixture.index_args.iter().map(String::as_str).collect();
        Hub::start_with(data_dir, &args, &env)
    }

    /// A `renkei` admin command on this fixture's index and bucket.
    fn lifecycle(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("renkei runs")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(RENKEI);
        command.args(args).arg("--data-dir").arg(&self.fixture.data_dir).args(&self.fixture.index_args);
        command.envs(self.env());
        command
    }

    /// C-GETs the old study from `hub` into a new folder `name`; checks that every object
    /// came back exactly as it was sent.
    fn get_old_study(&self, hub: &Hub, name: &str) {
        let got = self.fixture.root.path().join(name);
        std::fs::create_dir_all(&got).expect("dir");
        let key = format!("StudyInstanceUID={}", self.old_study);
        let get = getscu(hub, "EASTGET", &got, &["QueryRetrieveLevel=STUDY", &key]);
        assert!(get.status.success(), "{}", text(&get));
        let got: Vec<_> = std::fs::read_dir(&got).expect("got").map(|e| e.expect("entry").path()).collect();
        assert_eq!(got.len(), self.old.len(), "{name}: {}", text(&get));
        assert!(got.iter().all(|file| same_dataset(file, &self.old)), "{name}: an object came back altered");
    }

    fn hot_blobs(&self) -> usize {
        blobs(&self.fixture.data_dir).len()
    }
}

/// `dcmdump`-free check of a received file: its data set is the one sent.
fn same_dataset(received: &std::path::Path, sent: &[std::path::PathBuf]) -> bool {
    let bytes = dataset_bytes(received);
    sent.iter().any(|file| dataset_bytes(file) == bytes)
}

#[test]
fn old_studies_go_cold_and_come_back_byte_for_byte() {
    let (tiers, hub) = TierFixture::stored(6);
    let hot_before = tiers.hot_blobs();

    let run = tiers.lifecycle(&["lifecycle", "run"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("moved 6 objects"), "{}", text(&run));
    assert_eq!(tiers.hot_blobs(), hot_before - 6, "the old study's hot copies are freed");
    assert_eq!(tiers.s3.objects().len(), 6, "and its objects are in the bucket");
    let again = tiers.lifecycle(&["lifecycle", "run"]);
    assert!(text(&again).contains("moved 0 objects"), "nothing left to move: {}", text(&again));
    let status = text(&tiers.lifecycle(&["lifecycle", "status"]));
    assert!(status.lines().any(|l| l.starts_with("east") && l.contains("cold") && l.contains(" 6 ")), "{status}");

    // Availability: NEARLINE for the cold study, over C-FIND and QIDO.
    let find = |study: &str| {
        let key = format!("StudyInstanceUID={study}");
        text(&findscu(&hub, "-S", "STORESCU", &["QueryRetrieveLevel=STUDY", &key, "InstanceAvailability"]))
    };
    assert!(find(&tiers.old_study).contains("[NEARLINE]"), "{}", find(&tiers.old_study));
    assert!(find(&tiers.new_study).contains("[ONLINE]"), "{}", find(&tiers.new_study));
    let token = crate::dicomweb::token(&tiers.fixture, &["--facility", "east"]);
    let bearer = format!("Bearer {token}");
    let (status, _, body) =
        crate::dicomweb::http(&hub, "/dicom-web/studies?PatientID=TIER01", &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{body}");
    let studies: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    let availability = |study: &str| {
        let found = studies.iter().find(|s| s["0020000D"]["Value"][0] == study).expect("study listed");
        found["00080056"]["Value"][0].as_str().expect("availability").to_owned()
    };
    assert_eq!(availability(&tiers.old_study), "NEARLINE");
    assert_eq!(availability(&tiers.new_study), "ONLINE");

    // WADO-RS recalls the cold study and returns it exactly as it was sent.
    let accept = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
    let path = format!("/dicom-web/studies/{}", tiers.old_study);
    let (status, head, body) =
        crate::dicomweb::get_bytes(&hub, &path, &[("Authorization", &bearer), ("Accept", accept)]);
    assert_eq!(status, 200, "{head}");
    let received = crate::dicomweb::parts(&body, &crate::dicomweb::boundary_of(&head));
    assert_eq!(received.len(), 6);
    for part in &received {
        let renkei_service::Part10Prefix::Header { dataset_offset, .. } = renkei_service::part10_prefix(part) else {
            panic!("a part that is not Part-10")
        };
        assert!(tiers.old.iter().any(|f| dataset_bytes(f) == part[dataset_offset..]), "a WADO part was altered");
    }
    assert_eq!(tiers.hot_blobs(), hot_before - 6, "recalled objects live in the recall cache, not the hot tier");

    // C-GET and C-MOVE (bit-preserving storescp) too, after the recall cache is emptied.
    std::fs::remove_dir_all(tiers.fixture.data_dir.join("recall")).expect("empty the recall cache");
    drop(hub);
    let hub = tiers.serve(&tiers.fixture.data_dir);
    tiers.get_old_study(&hub, "got");
    let study_key = format!("StudyInstanceUID={}", tiers.old_study);

    let moved_dir = tiers.fixture.root.path().join("moved");
    std::fs::create_dir_all(&moved_dir).expect("dir");
    let port = free_port();
    let mut storescp = std::process::Command::new("/usr/bin/storescp")
        .args(["-aet", "VIEWER", "+xa", "+B", "-od"])
        .arg(&moved_dir)
        .arg(port.to_string())
        .spawn()
        .expect("storescp starts");
    tiers.fixture.admin(&[
        "node",
        "add",
        "VIEWER",
        "--facility",
        "east",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    let moved = movescu(&hub, "STORESCU", "VIEWER", &["QueryRetrieveLevel=STUDY", &study_key]);
    let _ = storescp.kill();
    let _ = storescp.wait();
    assert!(moved.status.success(), "{}", text(&moved));
    let moved: Vec<_> = std::fs::read_dir(&moved_dir).expect("moved").map(|e| e.expect("entry").path()).collect();
    assert_eq!(moved.len(), 6);
    assert!(moved.iter().all(|file| same_dataset(file, &tiers.old)), "C-MOVE sent altered objects");

    // Retrievals are logged with the study's age (3–5 years), once per study per node in
    // five minutes: WADO-RS on the first server, C-GET on the second; its C-MOVE right after
    // is the same look at the study.
    let report = text(&tiers.lifecycle(&["report", "access"]));
    let east: Vec<&str> = report.lines().find(|l| l.starts_with("east")).expect("east").split_whitespace().collect();
    assert_eq!(east, ["east", "2", "0.0%", "0.0%", "100.0%", "0.0%", "0.0%"], "{report}");
}

/// The S3 server dies in the middle of a move: every object stays somewhere (hot, or
/// verified in the bucket), the run says it stopped, and the next run finishes the job.
#[test]
fn killing_s3_mid_move_loses_nothing_and_the_move_resumes() {
    const SLICES: usize = 100;
    let (mut tiers, hub) = TierFixture::stored(SLICES as u64);
    let hot_before = tiers.hot_blobs();
    let run = tiers
        .command(&["lifecycle", "run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("lifecycle run starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tiers.s3.objects().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the mover never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    tiers.s3.kill();
    let stopped = run.wait_with_output().expect("run ends");
    let report = text(&stopped);
    assert!(!stopped.status.success(), "the run must report that it stopped: {report}");
    let in_bucket = tiers.s3.objects().len();
    assert!(in_bucket < SLICES, "killed mid-move, not after: {report}");

    // Nothing lost: every object is hot, or whole in the (stopped) bucket, or both.
    for file in &tiers.old {
        let bytes = dataset_bytes(file);
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let hot = tiers.fixture.data_dir.join("blobs").join(&hash[..2]).join(&hash).exists();
        let cold = tiers.s3.object(&format!("blobs/{}/{hash}", &hash[..2])).is_some_and(|cold| cold == bytes);
        assert!(hot || cold, "{} is neither hot nor in the bucket", file.display());
    }
    assert!(hot_before - tiers.hot_blobs() <= in_bucket);

    tiers.s3.restart().expect("S3 comes back");
    let resumed = tiers.lifecycle(&["lifecycle", "run"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(tiers.hot_blobs(), hot_before - SLICES, "every old object moved in the end");
    assert_eq!(tiers.s3.objects().len(), SLICES);

    // And each comes back exactly as it was sent.
    tiers.get_old_study(&hub, "got");
}

/// Two nodes on one PostgreSQL index, one volume and one bucket: two lifecycle runs started
/// together move every old object exactly once, and either node serves it back from cold.
#[test]
fn two_nodes_share_the_cold_tier_and_never_move_an_object_twice() {
    const SLICES: usize = 40;
    let cluster = Cluster::start().expect("a throwaway PostgreSQL cluster");
    let (tiers, a) = TierFixture::stored_in(Fixture::on_postgres(&cluster.url()), SLICES as u64, false);
    let volume_b = tiers.fixture.root.path().join("data-b");
    std::os::unix::fs::symlink(&tiers.fixture.data_dir, &volume_b).expect("second mount");
    let b = tiers.serve(&volume_b);
    let hot_before = tiers.hot_blobs();

    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut command = tiers.command(&["lifecycle", "run"]);
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            command.spawn().expect("run")
        })
        .collect();
    let mut moved = 0;
    for run in runs {
        let output = run.wait_with_output().expect("run ends");
        let report = text(&output);
        if output.status.success() {
            let count = report.split_whitespace().nth(1).and_then(|n| n.parse::<usize>().ok()).expect("count");
            moved += count;
        } else {
            assert!(report.contains("another node is running the lifecycle"), "{report}");
        }
    }
    let rerun = tiers.lifecycle(&["lifecycle", "run"]);
    assert!(text(&rerun).contains("moved"), "{}", text(&rerun));
    moved += text(&rerun).split_whitespace().nth(1).and_then(|n| n.parse::<usize>().ok()).expect("count");
    assert_eq!(moved, SLICES, "each old object moved exactly once");
    assert_eq!(tiers.hot_blobs(), hot_before - SLICES);
    assert_eq!(tiers.s3.objects().len(), SLICES);

    // Node B reports the study NEARLINE and returns it byte for byte; so does node A.
    let key = format!("StudyInstanceUID={}", tiers.old_study);
    let found = text(&findscu(&b, "-S", "STORESCU", &["QueryRetrieveLevel=STUDY", &key, "InstanceAvailability"]));
    assert!(found.contains("[NEARLINE]"), "{found}");
    tiers.get_old_study(&b, "got-b");
    tiers.get_old_study(&a, "got-a");
}

/// Nodes that share no volume at all: the hot tier is a bucket too. What node A stores
/// is durable in the hot bucket before it is acknowledged, node B serves it from there, and
/// the lifecycle moves it from the hot bucket to the cold one.
#[test]
fn nodes_without_a_shared_volume_keep_the_hot_tier_in_a_bucket() {
    use renkei_testkit::s3::HOT_BUCKET;
    const SLICES: usize = 12;
    let cluster = Cluster::start().expect("a throwaway PostgreSQL cluster");
    let (tiers, a) = TierFixture::stored_in(Fixture::on_postgres(&cluster.url()), SLICES as u64, true);
    let stored = SLICES + 3;
    assert_eq!(tiers.hot_blobs(), 0, "nothing in node A's own blobs/");
    assert_eq!(tiers.s3.objects_in(HOT_BUCKET).len(), stored, "every object is in the hot bucket");

    let b = tiers.serve(&tiers.fixture.root.path().join("node-b"));
    let key = format!("StudyInstanceUID={}", tiers.old_study);
    let found = text(&findscu(&b, "-S", "STORESCU", &["QueryRetrieveLevel=STUDY", &key, "InstanceAvailability"]));
    assert!(found.contains("[ONLINE]"), "{found}");
    tiers.get_old_study(&b, "from-hot");

    let run = tiers.lifecycle(&["lifecycle", "run"]);
    assert!(text(&run).contains(&format!("moved {SLICES} objects")), "{}", text(&run));
    assert_eq!(tiers.s3.objects_in(HOT_BUCKET).len(), stored - SLICES, "the old study left the hot bucket");
    assert_eq!(tiers.s3.objects().len(), SLICES, "and is in the cold one");
    let found = text(&findscu(&b, "-S", "STORESCU", &["QueryRetrieveLevel=STUDY", &key, "InstanceAvailability"]));
    assert!(found.contains("[NEARLINE]"), "{found}");
    // Node B recalled the study from the hot bucket before; empty its cache so that it must
    // come from the cold bucket now.
    drop(b);
    std::fs::remove_dir_all(tiers.fixture.root.path().join("node-b").join("recall")).expect("empty B's cache");
    let b = tiers.serve(&tiers.fixture.root.path().join("node-b"));
    tiers.get_old_study(&b, "from-cold");
    tiers.get_old_study(&a, "from-a");
}

/// Files in the recall cache of a data directory.
fn recalled(data_dir: &std::path::Path) -> usize {
    let Ok(shards) = std::fs::read_dir(data_dir.join("recall")) else { return 0 };
    shards.filter_map(Result::ok).filter_map(|s| std::fs::read_dir(s.path()).ok()).map(|s| s.count()).sum()
}

/// A new study arrives for a patient whose earlier study is cold: the priors are recalled
/// ahead of reading, unless prefetch is turned off.
#[test]
fn a_new_study_warms_the_patients_cold_priors() {
    const SLICES: usize = 5;
    let (mut tiers, hub) = TierFixture::stored(SLICES as u64);
    let run = tiers.lifecycle(&["lifecycle", "run"]);
    assert!(text(&run).contains(&format!("moved {SLICES} objects")), "{}", text(&run));
    drop(hub);
    std::fs::remove_dir_all(tiers.fixture.data_dir.join("recall")).ok();

    let deadline = |seconds| std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    {
        // Off: another new study brings nothing back.
        let config = tiers.fixture.root.path().join("no-prefetch.toml");
        std::fs::write(&config, "[recall]\nprefetch_priors = false\n").expect("config");
        let env = [tiers.env(), vec![("RENKEI_CONFIG", config.display().to_string())]].concat();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = tiers.fixture.index_args.iter().map(String::as_str).collect();
        let hub = Hub::start_with(&tiers.fixture.data_dir, &args, &env);
        send(&hub, &write_study(&tiers.fixture.root.path().join("third"), 3, "20261120", 1));
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_eq!(recalled(&tiers.fixture.data_dir), 0, "prefetch is off");
    }

    let hub = tiers.serve(&tiers.fixture.data_dir);
    send(&hub, &write_study(&tiers.fixture.root.path().join("fourth"), 4, "20261121", 1));
    let until = deadline(30);
    while recalled(&tiers.fixture.data_dir) < SLICES && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(recalled(&tiers.fixture.data_dir), SLICES, "the cold prior is warm again");
    // Served from the recall cache even with the S3 server gone.
    tiers.s3.kill();
    tiers.get_old_study(&hub, "prefetched");
}
