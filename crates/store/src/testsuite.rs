//! The conformance suite every index backend runs. Each check takes a fresh, empty store.
//! [`store_test_suite!`](crate::store_test_suite) stamps out one `#[tokio::test]` per check.

use renkei_domain::model::{BlobHash, Facility, IndexedAttributes, NewInstance, Node, Principal, Role, StoreOutcome};
use renkei_domain::query::{Attribute, Matcher, Query, QueryKey, QueryLevel};
use renkei_domain::{AeTitle, FacilityId, Uid};

use renkei_domain::tier::{Access, AgeBucket, BlobRef, ColdRule, Tier};

use renkei_domain::mpi::{Actor, LinkKind, MatchOutcome, NewLink, PersonAssignment, RecordId};

use renkei_domain::sharing::{
    AccessKind, Audience, Consent, Grant, NewBreakGlass, NewPublication, PatientRef, Published, SharedAccess,
};

use renkei_domain::dose::{
    AlertRule, CtEvent, Device, DoseKind, DoseReport, DoseSource, DoseWrite, Event, EventData, ExamFilter, Grouping,
    ImageDose, Metric, NewExam, PatientSize, Phantom, ProtocolMapping, ReadImage, ReadReport, Totals,
};

use crate::{DoseStore, FacilityStore, InstanceStore, MpiStore, SharingStore, StoreError, TierStore, TokenStore};

/// What a backend under test must offer.
pub trait Store: FacilityStore + InstanceStore + TokenStore + TierStore + MpiStore + SharingStore + DoseStore {}
impl<T: FacilityStore + InstanceStore + TokenStore + TierStore + MpiStore + SharingStore + DoseStore> Store for T {}

/// Generates a `#[tokio::test]` per conformance check. `$make` is an async expression that
/// yields a fresh store, and may keep a guard alive: it must evaluate to `(store, guard)`.
#[macro_export]
macro_rules! store_test_suite {
    ($make:expr) => {
        $crate::store_test_suite!(@tests $make;
            facilities_and_ae_titles, nodes, record_outcomes, facilities_are_isolated,
            find_levels_and_computed_attributes, find_matchers, find_japanese_names, retrieve_current_versions, stats,
            tokens, tiers_and_availability, idle_studies_and_the_access_report, leases,
            patients_are_pending_until_matched, matching_writes_keys_links_and_persons, decisions_keep_history,
            sharing_follows_links_publications_and_break_glass, dose_queue_exams_devices_and_mappings,
            dose_distributions_by_facility_device_and_month);
    };
    (@tests $make:expr; $($check:ident),*) => {$(
        #[tokio::test]
        async fn $check() {
            let (store, _guard) = $make.await;
            $crate::testsuite::$check(&store).await;
        }
    )*};
}

fn facility(id: &str) -> FacilityId {
    FacilityId::new(id).expect("valid facility id")
}

fn ae(title: &str) -> AeTitle {
    AeTitle::new(title).expect("valid AE title")
}

fn uid(value: &str) -> Uid {
    Uid::new(value).expect("valid UID")
}

async fn add_facility(store: &dyn Store, id: &str, aes: &[&str]) {
    let f =
        Facility { id: facility(id), name: format!("{id} hospital"), ae_titles: aes.iter().map(|a| ae(a)).collect() };
    store.add_facility(&f).await.expect("add facility");
}

/// A CT instance of patient `patient`, study `study`, series `series`.
fn instance(facility_id: &str, patient: &str, study: &str, series: &str, sop: &str, blob: &str) -> NewInstance {
    NewInstance {
        facility: facility(facility_id),
        study_uid: uid(study),
        series_uid: uid(series),
        sop_instance_uid: uid(sop),
        sop_class_uid: uid("1.2.840.10008.5.1.4.1.1.2"),
        transfer_syntax_uid: uid("1.2.840.10008.1.2.1"),
        blob: BlobHash(blob.to_owned()),
        size: 100,
        attributes: IndexedAttributes {
            patient_id: Some(patient.to_owned()),
            patient_name: Some(format!("Yamada^{patient}")),
            patient_birth_date: Some("19700101".into()),
            patient_sex: Some("M".into()),
            study_date: Some("20240315".into()),
            study_time: Some("101530".into()),
            accession_number: Some(format!("ACC{study}")),
            modality: Some("CT".into()),
            series_number: Some("1".into()),
            instance_number: Some("1".into()),
            ..Default::default()
        },
        dose_source: false,
    }
}

async fn record(store: &dyn Store, batch: &[NewInstance]) -> Vec<StoreOutcome> {
    let results = store.record_instances(batch).await.expect("batch commits");
    results.into_iter().map(|r| r.expect("instance recorded")).collect()
}

fn query(level: QueryLevel, keys: &[(Attribute, &str)]) -> Query {
    Query {
        level,
        keys: keys
            .iter()
            .map(|(attribute, raw)| QueryKey {
                attribute: *attribute,
                matcher: Matcher::parse(*attribute, raw).expect("valid key"),
            })
            .collect(),
        limit: None,
        offset: 0,
        fuzzy: false,
    }
}

async fn find_values(store: &dyn Store, facility_id: &str, q: &Query, attribute: Attribute) -> Vec<String> {
    let matches = store.find(&facility(facility_id), q).await.expect("find");
    let mut values: Vec<String> =
        matches.iter().map(|m| m.values.get(&attribute).cloned().unwrap_or_default()).collect();
    values.sort();
    values
}

pub async fn facilities_and_ae_titles(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST", "PACS_EAST"]).await;
    add_facility(store, "west", &["CT_WEST"]).await;
    let duplicate_id = Facility { id: facility("east"), name: "again".into(), ae_titles: vec![ae("OTHER")] };
    assert!(matches!(store.add_facility(&duplicate_id).await, Err(StoreError::Conflict(_))));
    let taken_ae = Facility { id: facility("north"), name: "north".into(), ae_titles: vec![ae("CT_WEST")] };
    assert!(matches!(store.add_facility(&taken_ae).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.facility_of_ae(&ae("PACS_EAST")).await.expect("lookup"), Some(facility("east")));
    assert_eq!(store.facility_of_ae(&ae("CT_WEST")).await.expect("lookup"), Some(facility("west")));
    assert_eq!(store.facility_of_ae(&ae("UNKNOWN")).await.expect("lookup"), None);
    let all = store.facilities().await.expect("list");
    assert_eq!(all.len(), 2);
    let east = all.iter().find(|f| f.id == facility("east")).expect("east listed");
    assert_eq!(east.ae_titles, vec![ae("CT_EAST"), ae("PACS_EAST")]);
    assert!(store.facilities().await.expect("list").iter().all(|f| f.id != facility("north")));
}

pub async fn nodes(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let node = Node { ae_title: ae("VIEWER"), facility: facility("east"), host: "127.0.0.1".into(), port: 104 };
    store.put_node(&node).await.expect("add node");
    let moved = Node { port: 11113, ..node.clone() };
    store.put_node(&moved).await.expect("update node");
    assert_eq!(store.node(&facility("east"), &ae("VIEWER")).await.expect("get"), Some(moved));
    assert_eq!(store.node(&facility("east"), &ae("OTHER")).await.expect("get"), None);
    let orphan = Node { facility: facility("nowhere"), ..node };
    assert!(store.put_node(&orphan).await.is_err());
}

pub async fn record_outcomes(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let first = instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "aa");
    let same_in_batch = instance("east", "P1", "1.1", "1.1.1", "1.1.1.2", "bb");
    assert_eq!(
        record(store, &[first.clone(), same_in_batch]).await,
        vec![StoreOutcome::Created, StoreOutcome::Created]
    );
    assert_eq!(record(store, std::slice::from_ref(&first)).await, vec![StoreOutcome::Duplicate]);
    let changed = NewInstance { blob: BlobHash("cc".into()), ..first.clone() };
    assert_eq!(record(store, &[changed]).await, vec![StoreOutcome::NewVersion]);
    // Going back to the first content is a new version again, not a duplicate of history.
    assert_eq!(record(store, &[first]).await, vec![StoreOutcome::NewVersion]);
    let images = store.find(&facility("east"), &query(QueryLevel::Image, &[])).await.expect("find");
    assert_eq!(images.len(), 2);
}

pub async fn facilities_are_isolated(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    add_facility(store, "west", &["CT_WEST"]).await;
    let east = instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "aa");
    let west = NewInstance { facility: facility("west"), blob: BlobHash("bb".into()), ..east.clone() };
    assert_eq!(record(store, &[east, west]).await, vec![StoreOutcome::Created, StoreOutcome::Created]);
    let q = query(QueryLevel::Image, &[(Attribute::SopInstanceUid, "1.1.1.1")]);
    let east_hits = store.retrieve(&facility("east"), &q).await.expect("retrieve");
    let west_hits = store.retrieve(&facility("west"), &q).await.expect("retrieve");
    assert_eq!(east_hits.len(), 1);
    assert_eq!(west_hits.len(), 1);
    assert_eq!(east_hits[0].blob, BlobHash("aa".into()));
    assert_eq!(west_hits[0].blob, BlobHash("bb".into()));
    add_facility(store, "north", &["CT_NORTH"]).await;
    assert!(store.find(&facility("north"), &query(QueryLevel::Study, &[])).await.expect("find").is_empty());
}

pub async fn find_levels_and_computed_attributes(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let mut mr = instance("east", "P1", "1.1", "1.1.2", "1.1.2.1", "m1");
    mr.attributes.modality = Some("MR".into());
    record(
        store,
        &[
            instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "c1"),
            instance("east", "P1", "1.1", "1.1.1", "1.1.1.2", "c2"),
            mr,
            instance("east", "P1", "1.2", "1.2.1", "1.2.1.1", "c3"),
            instance("east", "P2", "1.3", "1.3.1", "1.3.1.1", "c4"),
        ],
    )
    .await;
    let patients = store
        .find(&facility("east"), &query(QueryLevel::Patient, &[(Attribute::PatientId, "P1")]))
        .await
        .expect("find");
    assert_eq!(patients.len(), 1);
    let p = &patients[0].values;
    assert_eq!(p.get(&Attribute::NumberOfPatientRelatedStudies).map(String::as_str), Some("2"));
    assert_eq!(p.get(&Attribute::NumberOfPatientRelatedSeries).map(String::as_str), Some("3"));
    assert_eq!(p.get(&Attribute::NumberOfPatientRelatedInstances).map(String::as_str), Some("4"));
    assert_eq!(p.get(&Attribute::PatientName).map(String::as_str), Some("Yamada^P1"));

    let studies = store
        .find(&facility("east"), &query(QueryLevel::Study, &[(Attribute::StudyInstanceUid, "1.1")]))
        .await
        .expect("find");
    assert_eq!(studies.len(), 1);
    let s = &studies[0].values;
    assert_eq!(s.get(&Attribute::ModalitiesInStudy).map(String::as_str), Some("CT\\MR"));
    assert_eq!(s.get(&Attribute::NumberOfStudyRelatedSeries).map(String::as_str), Some("2"));
    assert_eq!(s.get(&Attribute::NumberOfStudyRelatedInstances).map(String::as_str), Some("3"));
    assert_eq!(s.get(&Attribute::PatientId).map(String::as_str), Some("P1"));

    let series = store
        .find(&facility("east"), &query(QueryLevel::Series, &[(Attribute::StudyInstanceUid, "1.1")]))
        .await
        .expect("find");
    assert_eq!(series.len(), 2);
    let ct = series
        .iter()
        .find(|m| m.values.get(&Attribute::Modality).map(String::as_str) == Some("CT"))
        .expect("CT series");
    assert_eq!(ct.values.get(&Attribute::NumberOfSeriesRelatedInstances).map(String::as_str), Some("2"));

    let images = store
        .find(&facility("east"), &query(QueryLevel::Image, &[(Attribute::SeriesInstanceUid, "1.1.1")]))
        .await
        .expect("find");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].values.get(&Attribute::InstanceAvailability).map(String::as_str), Some("ONLINE"));
    assert_eq!(images[0].values.get(&Attribute::SopClassUid).map(String::as_str), Some("1.2.840.10008.5.1.4.1.1.2"));

    // ModalitiesInStudy matches studies with any series of that modality.
    let q = query(QueryLevel::Study, &[(Attribute::ModalitiesInStudy, "MR")]);
    assert_eq!(find_values(store, "east", &q, Attribute::StudyInstanceUid).await, vec!["1.1"]);

    let mut paged = query(QueryLevel::Study, &[]);
    paged.limit = Some(2);
    paged.offset = 1;
    assert_eq!(store.find(&facility("east"), &paged).await.expect("find").len(), 2);
}

pub async fn find_matchers(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let mut a = instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "a");
    a.attributes.patient_name = Some("Yamada^Tarou".into());
    a.attributes.study_date = Some("20240110".into());
    a.attributes.study_time = Some("0815".into());
    let mut b = instance("east", "P2", "1.2", "1.2.1", "1.2.1.1", "b");
    b.attributes.patient_name = Some("Yamamoto^Hanako".into());
    b.attributes.study_date = Some("20240620".into());
    b.attributes.study_time = Some("143000.5".into());
    let mut c = instance("east", "P3_%", "1.3", "1.3.1", "1.3.1.1", "c");
    c.attributes.patient_name = Some("Sato^Jiro".into());
    c.attributes.study_date = None;
    c.attributes.study_time = None;
    record(store, &[a, b, c]).await;

    let study = |keys: &[(Attribute, &str)]| query(QueryLevel::Study, keys);
    let uids = async |q: Query| find_values(store, "east", &q, Attribute::StudyInstanceUid).await;
    assert_eq!(uids(study(&[(Attribute::PatientName, "YAMA*")])).await, vec!["1.1", "1.2"]);
    assert_eq!(uids(study(&[(Attribute::PatientName, "yamada^tarou")])).await, vec!["1.1"]);
    assert_eq!(uids(study(&[(Attribute::PatientName, "Yamad?^*")])).await, vec!["1.1"]);
    assert_eq!(uids(study(&[(Attribute::PatientId, "P3_%")])).await, vec!["1.3"]);
    assert_eq!(uids(study(&[(Attribute::PatientId, "P_")])).await, Vec::<String>::new());
    assert_eq!(
        uids(study(&[(Attribute::PatientId, "p1")])).await,
        Vec::<String>::new(),
        "LO matching is case-sensitive"
    );
    assert_eq!(uids(study(&[(Attribute::StudyDate, "20240101-20240331")])).await, vec!["1.1"]);
    assert_eq!(uids(study(&[(Attribute::StudyDate, "20240201-")])).await, vec!["1.2"]);
    assert_eq!(uids(study(&[(Attribute::StudyDate, "-20241231")])).await, vec!["1.1", "1.2"]);
    assert_eq!(uids(study(&[(Attribute::StudyDate, "20240620")])).await, vec!["1.2"]);
    assert_eq!(uids(study(&[(Attribute::StudyTime, "08-0830")])).await, vec!["1.1"]);
    assert_eq!(uids(study(&[(Attribute::StudyTime, "1430")])).await, vec!["1.2"]);
    assert_eq!(uids(study(&[(Attribute::StudyInstanceUid, "1.1\\1.3")])).await, vec!["1.1", "1.3"]);
    assert_eq!(uids(study(&[(Attribute::StudyDate, "")])).await, vec!["1.1", "1.2", "1.3"]);
    assert_eq!(
        uids(study(&[(Attribute::PatientName, "YAMA*"), (Attribute::StudyDate, "20240601-")])).await,
        vec!["1.2"]
    );
    // Raw values come back as stored, not as normalised keys.
    assert_eq!(
        find_values(store, "east", &study(&[(Attribute::StudyInstanceUid, "1.1")]), Attribute::StudyTime).await,
        vec!["0815"]
    );
}

pub async fn find_japanese_names(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let mut yamada = instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "a");
    yamada.attributes.patient_name = Some("Yamada^Tarou=山田^太郎=やまだ^たろう".into());
    yamada.attributes.referring_physician_name = Some("Suzuki^Ichiro=鈴木^一郎=すずき^いちろう".into());
    let mut sato = instance("east", "P2", "1.2", "1.2.1", "1.2.1.1", "b");
    sato.attributes.patient_name = Some("Sato^Hanako=佐藤^花子=さとう^はなこ".into());
    let mut kana_only = instance("east", "P3", "1.3", "1.3.1", "1.3.1.1", "c");
    kana_only.attributes.patient_name = Some("ﾀﾅｶ^ｼﾞﾛｳ".into());
    record(store, &[yamada, sato, kana_only]).await;

    let ids = async |raw: &str, fuzzy: bool| {
        let mut q = query(QueryLevel::Patient, &[(Attribute::PatientName, raw)]);
        q.fuzzy = fuzzy;
        find_values(store, "east", &q, Attribute::PatientId).await
    };
    for typed in ["ヤマダ*", "やまだ*", "山田*", "Yamada*", "YAMADA^TAROU", "ﾔﾏﾀﾞ*", "Ｙａｍａｄａ*", "*^たろう"]
    {
        assert_eq!(ids(typed, false).await, vec!["P1"], "{typed}");
    }
    assert_eq!(ids("タナカ*", false).await, vec!["P3"], "half-width kana is found by full-width");
    assert_eq!(ids("*=佐藤*", false).await, vec!["P2"], "an ideographic group pattern");
    assert_eq!(ids("*=サトウ*", false).await, Vec::<String>::new(), "kana is no ideographic match");
    assert_eq!(ids("サトー*", false).await, Vec::<String>::new(), "strict keys keep ー and ウ apart");
    assert_eq!(ids("サトー*", true).await, vec!["P2"], "fuzzy keys fold long vowels");
    assert_eq!(ids("Satoh^Hanako", true).await, vec!["P2"]);
    assert_eq!(ids("たなか^じろー", true).await, vec!["P3"]);
    // Referring physicians are names too.
    let mut q = query(QueryLevel::Study, &[(Attribute::ReferringPhysicianName, "すずき*")]);
    assert_eq!(find_values(store, "east", &q, Attribute::StudyInstanceUid).await, vec!["1.1"]);
    q.fuzzy = true;
    assert_eq!(find_values(store, "east", &q, Attribute::StudyInstanceUid).await, vec!["1.1"]);
}

pub async fn retrieve_current_versions(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    record(
        store,
        &[
            instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "a"),
            instance("east", "P1", "1.1", "1.1.2", "1.1.2.1", "b"),
            instance("east", "P1", "1.2", "1.2.1", "1.2.1.1", "c"),
        ],
    )
    .await;
    record(store, &[instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "a2")]).await;
    let study = query(QueryLevel::Study, &[(Attribute::StudyInstanceUid, "1.1")]);
    let mut blobs: Vec<String> =
        store.retrieve(&facility("east"), &study).await.expect("retrieve").into_iter().map(|i| i.blob.0).collect();
    blobs.sort();
    assert_eq!(blobs, vec!["a2", "b"]);
    let patient = query(QueryLevel::Patient, &[(Attribute::PatientId, "P1")]);
    assert_eq!(store.retrieve(&facility("east"), &patient).await.expect("retrieve").len(), 3);
}

pub async fn stats(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    add_facility(store, "west", &["CT_WEST"]).await;
    record(
        store,
        &[
            instance("east", "P1", "1.1", "1.1.1", "1.1.1.1", "a"),
            instance("east", "P1", "1.1", "1.1.1", "1.1.1.2", "b"),
            instance("east", "P2", "1.2", "1.2.1", "1.2.1.1", "c"),
        ],
    )
    .await;
    let stats = store.stats().await.expect("stats");
    let east = stats.iter().find(|s| s.facility == "east").expect("east");
    assert_eq!((east.patients, east.studies, east.series, east.instances, east.bytes), (2, 2, 2, 3, 300));
    let west = stats.iter().find(|s| s.facility == "west").expect("west");
    assert_eq!((west.patients, west.instances, west.bytes), (0, 0, 0));
}

pub async fn tokens(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let viewer = Principal { facility: Some(facility("east")), role: Role::Viewer };
    let admin = Principal { facility: None, role: Role::Admin };
    store.add_token("hash-of-viewer", &viewer).await.expect("add");
    store.add_token("hash-of-admin", &admin).await.expect("add");
    assert_eq!(store.principal("hash-of-viewer").await.expect("lookup"), Some(viewer.clone()));
    assert_eq!(store.principal("hash-of-admin").await.expect("lookup"), Some(admin));
    assert_eq!(store.principal("unknown").await.expect("lookup"), None);
    assert!(matches!(store.add_token("hash-of-viewer", &viewer).await, Err(StoreError::Conflict(_))));
    let orphan = Principal { facility: Some(facility("nowhere")), role: Role::Uploader };
    assert!(matches!(store.add_token("hash-of-orphan", &orphan).await, Err(StoreError::NotFound(_))));
}

/// An instance of `study` dated `date`.
fn dated(study: &str, date: &str, sop: &str, blob: &str) -> NewInstance {
    let mut item = instance("east", "P1", study, &format!("{study}.1"), sop, blob);
    item.attributes.study_date = Some(date.to_owned());
    item
}

fn blob_names(blobs: &[BlobRef]) -> Vec<&str> {
    let mut names: Vec<&str> = blobs.iter().map(|b| b.blob.0.as_str()).collect();
    names.sort();
    names
}

pub async fn tiers_and_availability(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    let old = [dated("1.1", "20150101", "1.1.1.1", "old-a"), dated("1.1", "20150101", "1.1.1.2", "old-b")];
    let new = [dated("1.2", "20260101", "1.2.1.1", "new-a")];
    record(store, &old).await;
    record(store, &new).await;
    let rule = ColdRule { dated_before: Some("20231121".into()), idle_since: None };
    let candidates = store.cold_candidates(&facility("east"), &rule, 100).await.expect("candidates");
    assert_eq!(blob_names(&candidates), vec!["old-a", "old-b"]);
    assert!(candidates.iter().all(|c| c.size == 100));
    assert!(store.cold_candidates(&facility("west"), &rule, 100).await.expect("other facility").is_empty());
    assert_eq!(store.cold_candidates(&facility("east"), &rule, 1).await.expect("limited").len(), 1);

    store.mark_cold(&candidates[0]).await.expect("mark");
    store.mark_cold(&candidates[0]).await.expect("marking twice is harmless");
    let availability = |level: QueryLevel, key: (Attribute, &'static str)| async move {
        let found = store.find(&facility("east"), &query(level, &[key])).await.expect("find");
        found.iter().map(|m| m.values[&Attribute::InstanceAvailability].clone()).collect::<Vec<_>>()
    };
    assert_eq!(availability(QueryLevel::Study, (Attribute::StudyInstanceUid, "1.1")).await, ["NEARLINE"]);
    assert_eq!(availability(QueryLevel::Study, (Attribute::StudyInstanceUid, "1.2")).await, ["ONLINE"]);
    assert_eq!(availability(QueryLevel::Series, (Attribute::SeriesInstanceUid, "1.1.1")).await, ["NEARLINE"]);
    let mut images = availability(QueryLevel::Image, (Attribute::SeriesInstanceUid, "1.1.1")).await;
    images.sort();
    assert_eq!(images, ["NEARLINE", "ONLINE"], "one of the two instances is cold");

    store.mark_cold(&candidates[1]).await.expect("mark");
    assert!(store.cold_candidates(&facility("east"), &rule, 100).await.expect("none left").is_empty());
    let priors = store.cold_blobs_of_patient(&facility("east"), "P1", "1.2").await.expect("priors");
    assert_eq!(blob_names(&priors), vec!["old-a", "old-b"]);
    assert!(store.cold_blobs_of_patient(&facility("east"), "P1", "1.1").await.expect("none").is_empty());

    let stats = store.tier_stats().await.expect("tier stats");
    let of = |tier: Tier| stats.iter().find(|s| s.facility == "east" && s.tier == tier).map(|s| (s.instances, s.bytes));
    assert_eq!(of(Tier::Hot), Some((1, 100)));
    assert_eq!(of(Tier::Cold), Some((2, 200)));
}

pub async fn idle_studies_and_the_access_report(store: &dyn Store) {
    add_facility(store, "east", &["CT_EAST"]).await;
    record(store, &[dated("1.1", "20260101", "1.1.1.1", "a"), dated("1.2", "", "1.2.1.1", "b")]).await;
    // Later than any instance's arrival.
    let now = 4_000_000_000;
    // Nothing was retrieved yet: both studies have been idle since they arrived.
    let idle = ColdRule { dated_before: None, idle_since: Some(now) };
    assert_eq!(blob_names(&store.cold_candidates(&facility("east"), &idle, 10).await.expect("idle")), ["a", "b"]);
    let access = |study: &str, age_days: Option<i64>, at: i64| Access {
        facility: "east".into(),
        study_uid: study.into(),
        age_days,
        at,
    };
    store
        .record_accesses(&[access("1.1", Some(10), now + 10), access("1.2", None, now - 5_000_000)])
        .await
        .expect("log");
    assert_eq!(blob_names(&store.cold_candidates(&facility("east"), &idle, 10).await.expect("idle")), ["b"]);

    let ages = [Some(400), Some(1200), Some(1500), Some(2500)];
    store.record_accesses(&ages.map(|age| access("1.1", age, now))).await.expect("log");
    let report = store.access_report(now - 1).await.expect("report");
    let count = |bucket: AgeBucket| {
        report.iter().find(|c| c.facility == "east" && c.bucket == bucket).map_or(0, |c| c.retrievals)
    };
    assert_eq!(count(AgeBucket::UnderOneYear), 1);
    assert_eq!(count(AgeBucket::OneToThreeYears), 1);
    assert_eq!(count(AgeBucket::ThreeToFiveYears), 2);
    assert_eq!(count(AgeBucket::OverFiveYears), 1);
    assert_eq!(count(AgeBucket::Undated), 0, "the undated retrieval is older than the report's start");
    let everything = store.access_report(0).await.expect("report");
    assert_eq!(everything.iter().map(|c| c.retrievals).sum::<u64>(), 6);
}

pub async fn leases(store: &dyn Store) {
    let now = 1_000_000;
    assert!(store.try_lease("lifecycle", "node-a", now, 60).await.expect("take"));
    assert!(!store.try_lease("lifecycle", "node-b", now + 30, 60).await.expect("held by a"));
    assert!(store.try_lease("prefetch", "node-b", now, 60).await.expect("another job"));
    assert!(store.try_lease("lifecycle", "node-a", now + 30, 60).await.expect("renew"));
    assert!(!store.try_lease("lifecycle", "node-b", now + 80, 60).await.expect("renewed until now + 90"));
    assert!(store.try_lease("lifecycle", "node-b", now + 91, 60).await.expect("expired: b takes over"));
    store.release_lease("lifecycle", "node-a").await.expect("a no longer holds it: nothing happens");
    assert!(!store.try_lease("lifecycle", "node-a", now + 100, 60).await.expect("still b's"));
    store.release_lease("lifecycle", "node-b").await.expect("release");
    assert!(store.try_lease("lifecycle", "node-a", now + 100, 60).await.expect("free again"));
}

/// Records a patient of `facility` with the given demographics (one instance).
async fn patient(store: &dyn Store, facility_id: &str, id: &str, name: &str, birth_date: &str, n: u32) -> RecordId {
    let mut item = instance(facility_id, id, &format!("1.2.{n}"), &format!("1.2.{n}.1"), &format!("1.2.{n}.1.1"), "b");
    item.attributes.patient_name = Some(name.into());
    item.attributes.patient_birth_date = Some(birth_date.into());
    record(store, &[item]).await;
    let found = store.record_of_patient(&facility(facility_id), id, "").await.expect("read").expect("recorded");
    found.id
}

pub async fn patients_are_pending_until_matched(store: &dyn Store) {
    add_facility(store, "east", &["EAST"]).await;
    let id = patient(store, "east", "P1", "Yamada^Hanako=山田^花子=ヤマダ^ハナコ", "19800102", 1).await;
    let pending = store.pending_records(10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    let (first, state) = &pending[0];
    assert_eq!(
        (first.id, first.name.as_str(), first.birth_date.as_str()),
        (id, "Yamada^Hanako=山田^花子=ヤマダ^ハナコ", "19800102")
    );
    assert_eq!(first.person, None);

    // Another instance of the same patient with the same demographics changes nothing…
    let mut same = instance("east", "P1", "1.2.1", "1.2.1.1", "1.2.1.1.2", "c");
    same.attributes.patient_name = Some(first.name.clone());
    same.attributes.patient_birth_date = Some("19800102".into());
    record(store, &[same]).await;
    let outcome = MatchOutcome { matched: vec![(id, *state)], ..Default::default() };
    store.apply_matching(&outcome, 10).await.expect("apply");
    assert!(store.pending_records(10).await.expect("pending").is_empty(), "matched");

    // …but a corrected birth date makes it pending again, and a stale match does not clear it.
    let mut corrected = instance("east", "P1", "1.2.1", "1.2.1.1", "1.2.1.1.3", "d");
    corrected.attributes.patient_name = Some(first.name.clone());
    corrected.attributes.patient_birth_date = Some("19800103".into());
    record(store, &[corrected]).await;
    let pending = store.pending_records(10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    let stale = MatchOutcome { matched: vec![(id, pending[0].1 - 1)], ..Default::default() };
    store.apply_matching(&stale, 11).await.expect("apply");
    assert_eq!(store.pending_records(10).await.expect("pending").len(), 1, "changed since it was read");
    assert_eq!(store.mpi_stats().await.expect("stats").pending, 1);
}

pub async fn matching_writes_keys_links_and_persons(store: &dyn Store) {
    add_facility(store, "east", &["EAST"]).await;
    add_facility(store, "west", &["WEST"]).await;
    let a = patient(store, "east", "E1", "=山田^花子=ヤマダ^ハナコ", "19800102", 1).await;
    let b = patient(store, "west", "W1", "=山田^花子=ﾔﾏﾀﾞ^ﾊﾅｺ", "19800102", 2).await;
    let c = patient(store, "west", "W2", "=山田^花=ヤマダ^ハナ", "19800102", 3).await;
    let matcher = Actor::matcher("scored");
    let outcome = MatchOutcome {
        matched: store.pending_records(10).await.expect("pending").into_iter().map(|(r, s)| (r.id, s)).collect(),
        keys: vec![(a, vec!["d:19800102".into(), "n:ヤマダ^ハナコ".into()]), (b, vec!["d:19800102".into()])],
        all_keys: false,
        retire: vec![],
        retired_by: None,
        add: vec![
            NewLink::between(b, a, LinkKind::Auto, Some(21.5), matcher.clone()),
            NewLink::between(a, c, LinkKind::Candidate, Some(3.25), matcher.clone()),
        ],
        persons: vec![
            PersonAssignment { person: None, records: vec![a, b] },
            PersonAssignment { person: None, records: vec![c] },
        ],
    };
    store.apply_matching(&outcome, 100).await.expect("apply");

    let by_date = store.records_by_keys(&["d:19800102".into()], 10).await.expect("by key");
    let mut ids: Vec<RecordId> = by_date.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, vec![a, b]);
    assert!(store.records_by_keys(&["d:19800102".into()], 1).await.expect("by key").is_empty(), "too common a key");
    let by_name = store.records_by_keys(&["n:ヤマダ^ハナコ".into(), "x".into()], 10).await.expect("by key");
    assert_eq!(by_name.len(), 1);
    let by_prefix = store.records_by_keys(&["n:ヤマダ^*".into()], 10).await.expect("by prefix");
    assert_eq!(by_prefix.len(), 1);
    assert!(store.records_by_keys(&["n:ヤマダ^ハ%*".into()], 10).await.expect("by prefix").is_empty(), "% is literal");

    let records = store.records(&[a, b, c]).await.expect("records");
    let person = records[0].person.expect("a person");
    assert_eq!(records[1].person, Some(person));
    assert!(records[2].person.is_some() && records[2].person != Some(person));
    let members = store.records_of_persons(&[person]).await.expect("person");
    assert_eq!(members.iter().map(|r| r.facility.as_str()).collect::<Vec<_>>(), ["east", "west"]);

    let links = store.current_links(&[a]).await.expect("links");
    assert_eq!(links.len(), 2);
    let auto = links.iter().find(|l| l.kind == LinkKind::Auto).expect("auto link");
    assert_eq!((auto.a, auto.b, auto.weight, auto.created_at), (a.min(b), a.max(b), Some(21.5), 100));
    let queue = store.candidate_links(10).await.expect("queue");
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].weight, Some(3.25));

    // A pair that already has a current link keeps it; keys are replaced, not added to.
    let again = MatchOutcome {
        keys: vec![(a, vec!["d:19800102".into()])],
        add: vec![NewLink::between(a, b, LinkKind::Candidate, Some(1.0), matcher.clone())],
        persons: vec![PersonAssignment { person: Some(person), records: vec![a, b, c] }],
        ..Default::default()
    };
    store.apply_matching(&again, 101).await.expect("apply");
    assert!(store.records_by_keys(&["n:ヤマダ^ハナコ".into()], 10).await.expect("by key").is_empty());
    let links = store.current_links(&[a, b]).await.expect("links");
    assert_eq!(links.iter().filter(|l| l.kind == LinkKind::Auto).count(), 1);
    assert_eq!(store.records_of_persons(&[person]).await.expect("person").len(), 3);

    let stats = store.mpi_stats().await.expect("stats");
    assert_eq!(
        (stats.records, stats.pending, stats.persons, stats.persons_across_facilities, stats.candidates),
        (3, 0, 1, 1, 1)
    );
    assert!(store.model().await.expect("model").is_none());
    store.save_model("{\"v\":1}", 5).await.expect("save");
    store.save_model("{\"v\":2}", 6).await.expect("save");
    assert_eq!(store.model().await.expect("model").as_deref(), Some("{\"v\":2}"));
    assert_eq!(store.all_records().await.expect("all").len(), 3);
    assert_eq!(store.all_current_links().await.expect("all").len(), 2);

    // A rebuild's outcome replaces every key there is, and, big enough, takes the bulk path
    // (on SQLite: secondary indexes dropped and built again); everything reads as before.
    let mut matched: Vec<(RecordId, i64)> = (1_000_000..1_010_001).map(|pk| (RecordId(pk), 1)).collect();
    matched.push((b, 0));
    let rebuilt = MatchOutcome {
        matched,
        keys: vec![(b, vec!["y:ヤマダ^ハナコ^1980".into()])],
        all_keys: true,
        add: vec![NewLink::between(b, c, LinkKind::Candidate, Some(2.0), matcher.clone())],
        persons: vec![PersonAssignment { person: Some(person), records: vec![a, b, c] }],
        ..Default::default()
    };
    store.apply_matching(&rebuilt, 102).await.expect("apply");
    assert!(store.records_by_keys(&["d:19800102".into()], 10).await.expect("by key").is_empty(), "all replaced");
    let by_year = store.records_by_keys(&["y:ヤマダ^ハナコ^1980".into()], 10).await.expect("by key");
    assert_eq!(by_year.iter().map(|r| r.id).collect::<Vec<_>>(), [b]);
    assert_eq!(store.current_links(&[c]).await.expect("links").len(), 2);
    assert_eq!(store.records_of_persons(&[person]).await.expect("person").len(), 3);
}

pub async fn decisions_keep_history(store: &dyn Store) {
    add_facility(store, "east", &["EAST"]).await;
    let a = patient(store, "east", "E1", "=山田^花子=ヤマダ^ハナコ", "19800102", 1).await;
    let b = patient(store, "east", "E2", "=山田^花子=ヤマダ^ハナコ", "19800102", 2).await;
    let pending = store.pending_records(10).await.expect("pending");
    let candidate = NewLink::between(a, b, LinkKind::Candidate, Some(2.0), Actor::matcher("scored"));
    let outcome = MatchOutcome {
        matched: pending.into_iter().map(|(r, s)| (r.id, s)).collect(),
        add: vec![candidate],
        ..Default::default()
    };
    store.apply_matching(&outcome, 100).await.expect("apply");
    let queued = store.candidate_links(10).await.expect("queue").remove(0);

    // A reviewer rejects the candidate: it is retired, a "different" link replaces it, and
    // both records are pending again.
    let reviewer = Actor { who: "dr.sato".into(), why: "different mothers' names on file".into() };
    let different = NewLink::between(a, b, LinkKind::Different, None, reviewer.clone());
    store.decide(Some(&different), &[queued.id], &reviewer, 200).await.expect("decide");
    assert!(store.candidate_links(10).await.expect("queue").is_empty());
    assert_eq!(store.pending_records(10).await.expect("pending").len(), 2);
    let current = store.current_links(&[a]).await.expect("links");
    assert_eq!(current.len(), 1);
    assert_eq!((current[0].kind, current[0].created_by.clone()), (LinkKind::Different, reviewer.clone()));

    let history = store.link_history(&[b]).await.expect("history");
    assert_eq!(history.len(), 2);
    let retired = history[0].retired.as_ref().expect("retired");
    assert_eq!((retired.by.clone(), retired.at), (reviewer.clone(), 200));
    assert_eq!(history[1].retired, None);

    // Undone: the "different" link is retired in turn, and the history keeps all three events.
    let undo = Actor { who: "dr.sato".into(), why: "wrong chart".into() };
    store.decide(None, &[current[0].id], &undo, 300).await.expect("undo");
    assert!(store.current_links(&[a, b]).await.expect("links").is_empty());
    let history = store.link_history(&[a, b]).await.expect("history");
    assert!(history.iter().all(|l| l.retired.is_some()));
    assert_eq!(history[1].retired.as_ref().map(|r| r.by.why.as_str()), Some("wrong chart"));
}

fn patient_ref(facility_id: &str, patient_id: &str) -> PatientRef {
    PatientRef { facility: facility(facility_id), patient_id: patient_id.into(), issuer: String::new() }
}

fn publication(published: Published, audience: Audience, starts_at: i64, ends_at: i64) -> NewPublication {
    NewPublication {
        patient: patient_ref("east", "E1"),
        published,
        audience,
        starts_at,
        ends_at,
        consent: Consent { given_by: "the patient".into(), given_at: 90, scope: "referral to west".into() },
        created_by: "dr.tanaka".into(),
    }
}

pub async fn sharing_follows_links_publications_and_break_glass(store: &dyn Store) {
    for id in ["east", "west", "north"] {
        add_facility(store, id, &[&id.to_uppercase()]).await;
    }
    let e1 = patient(store, "east", "E1", "Yamada^Hanako", "19800102", 1).await;
    record(store, &[instance("east", "E1", "1.2.9", "1.2.9.1", "1.2.9.1.1", "e")]).await;
    let w1 = patient(store, "west", "W1", "Yamada^Hana", "19800102", 2).await;
    let n1 = patient(store, "north", "N1", "Yamada^Hanako", "19800102", 3).await;
    // West has her twice (its own duplicate): what is shared goes out once, under the first.
    let w1b = patient(store, "west", "W1b", "Yamada^Hanako", "19800102", 4).await;
    let studies = Query::new(QueryLevel::Study, Vec::new());
    let shared_uids = |found: Vec<renkei_domain::query::QueryMatch>| -> Vec<String> {
        found.iter().map(|m| m.values[&Attribute::StudyInstanceUid].clone()).collect()
    };
    let west = facility("west");

    // Published, but west's patient is not linked to east's yet: nothing to see.
    let to_west = Audience::Facilities(vec![facility("west")]);
    let study = Published::Study { study_uid: "1.2.1".into() };
    let published = store.publish(&publication(study.clone(), to_west.clone(), 100, 200), 95).await.expect("publish");
    assert!(store.find_shared(&west, &studies, 150).await.expect("find").is_empty(), "not linked");

    let outcome = MatchOutcome {
        persons: vec![PersonAssignment { person: None, records: vec![e1, w1, n1, w1b] }],
        ..Default::default()
    };
    store.apply_matching(&outcome, 96).await.expect("link");
    let found = store.find_shared(&west, &studies, 150).await.expect("find");
    assert_eq!(shared_uids(found.clone()), ["1.2.1"]);
    let seen = found[0].shared.as_ref().expect("marked shared");
    assert_eq!((seen.origin.as_str(), seen.origin_patient_id.as_str()), ("east", "E1"));
    assert_eq!(seen.grant, Grant::Publication(published.id));
    assert_eq!(found[0].values[&Attribute::PatientId], "W1", "under west's own patient");
    assert_eq!(seen.local.name, "Yamada^Hana");
    let by_local_id = Query::new(
        QueryLevel::Series,
        vec![QueryKey { attribute: Attribute::PatientId, matcher: Matcher::Exact("W1".into()) }],
    );
    assert_eq!(store.find_shared(&west, &by_local_id, 150).await.expect("find").len(), 1);
    let by_origin_id = Query::new(
        QueryLevel::Study,
        vec![QueryKey { attribute: Attribute::PatientId, matcher: Matcher::Exact("E1".into()) }],
    );
    assert!(store.find_shared(&west, &by_origin_id, 150).await.expect("find").is_empty());
    assert_eq!(store.published_to(&west, &[e1, w1, n1, w1b], 150).await.expect("published"), [e1]);
    assert!(store.published_to(&facility("north"), &[e1], 150).await.expect("published").is_empty());
    let instances = store.retrieve_shared(&west, &studies, 150).await.expect("retrieve");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].shared.as_ref().map(|s| s.local.patient_id.as_str()), Some("W1"));
    assert_eq!(shared_uids(store.find(&west, &studies).await.expect("own")), ["1.2.2", "1.2.4"], "own stay own");

    // Only inside its period, and only for its audience.
    for outside in [99, 200] {
        assert!(store.find_shared(&west, &studies, outside).await.expect("find").is_empty(), "at {outside}");
    }
    assert!(store.find_shared(&facility("north"), &studies, 150).await.expect("find").is_empty());

    // Revoked: gone at once, and only its own facility can revoke it.
    let revoker = Actor { who: "dr.tanaka".into(), why: "consent withdrawn".into() };
    let not_mine = store.revoke(published.id, Some(&west), &revoker, 160).await;
    assert!(matches!(not_mine, Err(StoreError::NotFound(_))));
    store.revoke(published.id, Some(&facility("east")), &revoker, 160).await.expect("revoke");
    assert!(store.find_shared(&west, &studies, 161).await.expect("find").is_empty());
    assert!(matches!(store.revoke(published.id, None, &revoker, 162).await, Err(StoreError::NotFound(_))));
    let listed = store.publications(Some(&facility("east")), 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].publication.audience, to_west);
    assert_eq!(listed[0].revoked.as_ref().map(|r| (r.by.clone(), r.at)), Some((revoker, 160)));
    assert!(store.publications(Some(&west), 10).await.expect("list").is_empty());

    // Every study of the patient, to the whole group.
    let all = store.publish(&publication(Published::Patient, Audience::Group, 100, 300), 170).await.expect("publish");
    let mut uids = shared_uids(store.find_shared(&facility("north"), &studies, 180).await.expect("find"));
    uids.sort();
    assert_eq!(uids, ["1.2.1", "1.2.9"]);
    store.revoke(all.id, None, &Actor { who: "admin".into(), why: "test".into() }, 190).await.expect("revoke");

    // Break-glass: north sees every study of the person at every facility, flagged, until it
    // ends.
    let access = NewBreakGlass {
        patient: patient_ref("north", "N1"),
        opened_by: Actor { who: "dr.kato".into(), why: "stroke transfer, unconscious".into() },
        starts_at: 200,
        ends_at: 400,
    };
    let opened = store.open_break_glass(&access).await.expect("break glass");
    let found = store.find_shared(&facility("north"), &studies, 250).await.expect("find");
    assert_eq!(shared_uids(found.clone()), ["1.2.1", "1.2.9", "1.2.2", "1.2.4"], "east's and west's");
    assert!(found.iter().all(|m| m.shared.as_ref().map(|s| s.grant) == Some(Grant::BreakGlass(opened.id))));
    assert!(store.find_shared(&facility("north"), &studies, 400).await.expect("find").is_empty(), "ended");
    assert!(store.find_shared(&west, &studies, 250).await.expect("find").is_empty(), "north's access only");
    let unknown = NewBreakGlass { patient: patient_ref("north", "nobody"), ..access.clone() };
    assert!(matches!(store.open_break_glass(&unknown).await, Err(StoreError::NotFound(_))));

    let flagged = store.break_glasses(None, true, 10).await.expect("flagged");
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].access, access);
    let reviewer = Actor { who: "admin".into(), why: "confirmed with the ER log".into() };
    store.review_break_glass(opened.id, &reviewer, 500).await.expect("review");
    assert!(store.break_glasses(None, true, 10).await.expect("flagged").is_empty());
    assert!(matches!(store.review_break_glass(opened.id, &reviewer, 501).await, Err(StoreError::NotFound(_))));
    let all_accesses = store.break_glasses(Some(&facility("north")), false, 10).await.expect("all");
    assert_eq!(all_accesses[0].reviewed.as_ref().map(|r| r.by.clone()), Some(reviewer));

    // Closed early (by its own facility or an administrator): gone from then on.
    let closer = Actor { who: "admin".into(), why: "patient transferred back".into() };
    let not_yours = store.close_break_glass(opened.id, Some(&west), &closer, 300).await;
    assert!(matches!(not_yours, Err(StoreError::NotFound(_))));
    store.close_break_glass(opened.id, Some(&facility("north")), &closer, 300).await.expect("close");
    assert!(store.find_shared(&facility("north"), &studies, 310).await.expect("find").is_empty(), "closed");
    assert!(matches!(store.close_break_glass(opened.id, None, &closer, 320).await, Err(StoreError::NotFound(_))));
    let closed = store.break_glasses(Some(&facility("north")), false, 10).await.expect("all").remove(0);
    assert_eq!((closed.access.ends_at, closed.closed.map(|c| c.by)), (300, Some(closer)));

    // A facility's own copy of a study is not repeated as shared.
    record(store, &[instance("north", "N1", "1.2.9", "1.2.9.2", "1.2.9.2.1", "f")]).await;
    let found = store.find_shared(&facility("north"), &studies, 250).await.expect("find");
    assert_eq!(shared_uids(found), ["1.2.1", "1.2.2", "1.2.4"]);

    // A study must be the publishing patient's.
    let foreign = Published::Study { study_uid: "1.2.2".into() };
    let refused = store.publish(&publication(foreign, Audience::Group, 0, 10), 10).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))));

    let access = |at, facility_id: &str, grant| SharedAccess {
        at,
        facility: facility(facility_id),
        via: "AE NORTH".into(),
        origin: facility("east"),
        study_uid: "1.2.1".into(),
        kind: AccessKind::Retrieve,
        grant,
    };
    let log = [access(250, "north", Grant::BreakGlass(opened.id)), access(260, "west", Grant::Publication(all.id))];
    store.record_shared_accesses(&log).await.expect("audit");
    assert_eq!(store.shared_accesses(None, 0, 10).await.expect("audit"), [log[1].clone(), log[0].clone()]);
    assert_eq!(store.shared_accesses(Some(&facility("north")), 0, 10).await.expect("audit"), [log[0].clone()]);
    assert_eq!(store.shared_accesses(Some(&facility("east")), 255, 10).await.expect("audit"), [log[1].clone()]);
}

fn ct_dose(sop: &str, ctdivol: f64, dlp: f64, station: &str) -> DoseReport {
    DoseReport {
        sop_instance_uid: sop.into(),
        study_uid: "1.2.3.4".into(),
        source: DoseSource::Rdsr,
        kind: DoseKind::Ct,
        device: Device {
            manufacturer: "Renkei".into(),
            model: "S64".into(),
            station: station.into(),
            ..Device::default()
        },
        started: "20260301101500".into(),
        study_description: "頭部単純CT".into(),
        requested_procedure: String::new(),
        patient: PatientSize { age_years: Some(45.0), weight_kg: Some(60.5), height_m: None },
        totals: Totals { dlp: Some(dlp), events: Some(1), ..Totals::default() },
        events: vec![Event {
            uid: format!("{sop}.1"),
            protocol: "Head".into(),
            target_region: "Head".into(),
            started: String::new(),
            data: EventData::Ct(CtEvent { ctdivol: Some(ctdivol), dlp: Some(dlp), ..CtEvent::default() }),
        }],
        notes: Vec::new(),
    }
}

pub async fn dose_queue_exams_devices_and_mappings(store: &dyn Store) {
    add_facility(store, "east", &["EAST"]).await;
    add_facility(store, "west", &["WEST"]).await;
    let rdsr = NewInstance {
        sop_class_uid: uid("1.2.840.10008.5.1.4.1.1.88.67"),
        dose_source: true,
        ..instance("east", "P1", "1.2.3.4", "1.2.3.4.9", "1.2.3.4.9.1", "rdsr")
    };
    let image =
        NewInstance { dose_source: true, ..instance("east", "P1", "1.2.3.4", "1.2.3.4.1", "1.2.3.4.1.1", "ct") };
    let other = instance("east", "P1", "1.2.3.4", "1.2.3.4.2", "1.2.3.4.2.1", "mr");
    record(store, &[rdsr, image, other]).await;

    let now = unix_now();
    assert!(store.pending_dose(0, 10).await.expect("pending").is_empty(), "queued later than that");
    let pending = store.pending_dose(now + 5, 10).await.expect("pending");
    assert_eq!(pending.len(), 2, "the dose SR and the CT image, not the MR");
    assert_eq!(pending[0].instance.sop_class_uid.as_str(), "1.2.840.10008.5.1.4.1.1.88.67");
    assert_eq!(pending[0].facility.as_str(), "east");
    assert_eq!(pending[0].study_pk, pending[1].study_pk);
    let study_pk = pending[0].study_pk;

    let report = ct_dose("1.2.3.4.9.1", 55.5, 980.0, "CT1");
    let exam = NewExam {
        facility: facility("east"),
        study_pk,
        report: report.clone(),
        started_at: Some(1_772_330_100),
        description: "頭部単純CT".into(),
    };
    let image_dose = ImageDose {
        series_uid: "1.2.3.4.1".into(),
        irradiation_event_uid: "1.2.3.4.9.1.1".into(),
        protocol: "Head".into(),
        ctdivol: 55.5,
        phantom: Some(Phantom::Head16),
        kvp: Some(120.0),
        tube_current: None,
        exposure_time: None,
        pitch: None,
        total_collimation: None,
        acquisition_type: "Spiral Acquisition".into(),
        z: Some(-12.5),
        slice_thickness: Some(5.0),
        water_equivalent_diameter: Some(155.0),
    };
    let read_image = ReadImage { instance_pk: pending[1].instance_pk, study_pk, dose: image_dose };
    let write = DoseWrite {
        reports: vec![ReadReport { instance_pk: pending[0].instance_pk, study_pk, report: report.clone() }],
        images: vec![read_image.clone()],
        exams: vec![exam.clone()],
        done: pending.iter().map(|p| p.instance_pk).collect(),
    };
    store.write_dose(&write).await.expect("write");
    assert!(store.pending_dose(now + 5, 10).await.expect("pending").is_empty());
    assert_eq!(store.study_reports(study_pk).await.expect("reports"), vec![report.clone()]);
    assert_eq!(store.study_images(study_pk).await.expect("images"), vec![read_image]);
    assert!(store.study_images(study_pk + 1).await.expect("images").is_empty());

    let all = ExamFilter { limit: 10, ..ExamFilter::default() };
    let exams = store.exams(&all).await.expect("exams");
    assert_eq!(exams.len(), 1);
    let first = &exams[0];
    assert_eq!((first.facility.as_str(), first.patient_id.as_str(), first.kind), ("east", "P1", DoseKind::Ct));
    assert_eq!((first.ctdivol, first.dlp, first.weight_kg, first.dap), (Some(55.5), Some(980.0), Some(60.5), None));
    assert_eq!(
        (first.device.station.as_str(), first.started_at, first.category.as_deref()),
        ("CT1", Some(1_772_330_100), None)
    );
    assert_eq!(first.study_uid, "1.2.3.4");

    // Written again (a continued report merged in): the study keeps one CT exam, the device one key.
    let merged = NewExam { report: ct_dose("1.2.3.4.9.1", 55.5, 1200.0, "CT1"), ..exam.clone() };
    store.write_dose(&DoseWrite { exams: vec![merged], ..DoseWrite::default() }).await.expect("write");
    let exams = store.exams(&all).await.expect("exams");
    assert_eq!(exams.len(), 1);
    assert_eq!((exams[0].dlp, exams[0].device_id), (Some(1200.0), first.device_id));
    let (listed, stored) = store.exam_report(first.id).await.expect("exam").expect("found");
    assert_eq!((listed.id, stored.totals.dlp), (first.id, Some(1200.0)));
    assert!(store.exam_report(first.id + 1000).await.expect("exam").is_none());

    // Mapping a description confirms its category for the exams that have it, and for later ones.
    let unmapped = store.unmapped_descriptions(None, None, 10).await.expect("unmapped");
    assert_eq!(unmapped.len(), 1);
    assert_eq!((unmapped[0].description.as_str(), unmapped[0].exams), ("頭部単純CT", 1));
    let mapping = ProtocolMapping {
        facility: "east".into(),
        kind: DoseKind::Ct,
        description: "頭部単純CT".into(),
        category: Some("ct.head".into()),
        confirmed_by: "admin".into(),
        confirmed_at: 7,
    };
    assert_eq!(store.map_protocol(&mapping).await.expect("map"), 1);
    assert!(
        store
            .unmapped_descriptions(Some(&facility("east")), Some(DoseKind::Ct), 10)
            .await
            .expect("unmapped")
            .is_empty()
    );
    assert_eq!(store.protocol_mappings(Some(&facility("east"))).await.expect("mappings"), vec![mapping]);
    assert!(store.protocol_mappings(Some(&facility("west"))).await.expect("mappings").is_empty());
    let head = ExamFilter { category: Some("ct.head".into()), ..all.clone() };
    assert_eq!(store.exams(&head).await.expect("exams").len(), 1);
    store.write_dose(&DoseWrite { exams: vec![exam.clone()], ..DoseWrite::default() }).await.expect("write");
    assert_eq!(store.exams(&head).await.expect("exams")[0].category.as_deref(), Some("ct.head"));

    // Filters.
    let none = |filter: ExamFilter| async move { store.exams(&filter).await.expect("exams").is_empty() };
    assert!(none(ExamFilter { facility: Some(facility("west")), ..all.clone() }).await);
    assert!(none(ExamFilter { kind: Some(DoseKind::Projection), ..all.clone() }).await);
    assert!(none(ExamFilter { patients: vec![first.patient + 1], ..all.clone() }).await);
    assert!(none(ExamFilter { since: Some(1_772_330_101), ..all.clone() }).await);
    assert!(none(ExamFilter { until: Some(1_772_330_100), ..all.clone() }).await);
    assert!(!none(ExamFilter { patients: vec![first.patient], device: Some(first.device_id), ..all.clone() }).await);

    // Reindexing forgets what was read and queues every dose object again.
    assert_eq!(store.requeue_dose(&["1.2.840.10008.5.1.4.1.1.88.67"], 9).await.expect("requeue"), 1);
    assert!(store.exams(&all).await.expect("exams").is_empty());
    assert!(store.study_images(study_pk).await.expect("images").is_empty(), "images are read again too");
    assert_eq!(store.pending_dose(9, 10).await.expect("pending").len(), 1);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub async fn dose_distributions_by_facility_device_and_month(store: &dyn Store) {
    add_facility(store, "east", &["EAST"]).await;
    add_facility(store, "west", &["WEST"]).await;
    // (facility, DLP, station, started at): two east rooms, one west; January and February 2026 in Japan.
    let (january, february) = (1_767_225_600 + 3600, 1_769_904_000 + 3600);
    let exams = [
        ("east", 100.0, "CT1", january),
        ("east", 200.0, "CT1", january),
        ("east", 300.0, "CT2", february),
        ("east", 400.0, "CT2", february),
        ("west", 1000.0, "CT9", january),
    ];
    let mut write = DoseWrite::default();
    for (n, (facility_id, dlp, station, at)) in exams.iter().enumerate() {
        let study = format!("1.2.9.{n}");
        let sop = format!("1.2.9.{n}.1.1");
        let rdsr = NewInstance {
            sop_class_uid: uid("1.2.840.10008.5.1.4.1.1.88.67"),
            dose_source: true,
            ..instance(facility_id, &format!("P{n}"), &study, &format!("1.2.9.{n}.1"), &sop, &format!("b{n}"))
        };
        record(store, &[rdsr]).await;
        let pending = store.pending_dose(i64::MAX, 100).await.expect("pending");
        let item = pending.iter().find(|p| p.instance.sop_instance_uid.as_str() == sop).expect("queued");
        let mut report = ct_dose(&sop, 10.0 + n as f64, *dlp, station);
        // The first without a weight: a NULL in a place must not spoil later values there
        // (PostgreSQL types a cached statement's parameters by its first run).
        if n == 0 {
            report.patient.weight_kg = None;
        }
        write.exams.push(NewExam {
            facility: facility(facility_id),
            study_pk: item.study_pk,
            report,
            started_at: Some(*at),
            description: "胸部CT".into(),
        });
        write.done.push(item.instance_pk);
    }
    store.write_dose(&write).await.expect("write");
    let listed = store.exams(&ExamFilter { limit: 10, ..ExamFilter::default() }).await.expect("exams");
    assert_eq!(listed.iter().filter(|e| e.weight_kg == Some(60.5)).count(), 4);

    let all = ExamFilter { limit: 1, ..ExamFilter::default() };
    let by_facility = store.quantiles(&all, Metric::Dlp, Grouping::Facility).await.expect("quantiles");
    assert_eq!(by_facility.len(), 2);
    let east = &by_facility[0];
    assert_eq!((east.facility.as_str(), east.exams), ("east", 4), "the filter's limit does not apply");
    // Interpolated between the nearest ranks, as PostgreSQL's percentile_cont does.
    assert_eq!((east.min, east.q1, east.median, east.q3, east.max), (100.0, 175.0, 250.0, 325.0, 400.0));
    let west = &by_facility[1];
    assert_eq!((west.exams, west.min, west.median, west.max), (1, 1000.0, 1000.0, 1000.0));

    let by_device = store.quantiles(&all, Metric::Dlp, Grouping::Device).await.expect("quantiles");
    let medians: Vec<(String, f64)> = by_device.iter().map(|q| (q.facility.clone(), q.median)).collect();
    assert_eq!(medians, [("east".into(), 150.0), ("east".into(), 350.0), ("west".into(), 1000.0)]);
    let devices = store.devices(Some(&facility("east"))).await.expect("devices");
    assert_eq!(devices.len(), 2);
    assert!(by_device.iter().all(|q| q.device_id.is_some()));
    assert_eq!(by_device[0].device_id, Some(devices[0].id));
    assert_eq!(devices[0].device.station, "CT1");

    let east_only = ExamFilter { facility: Some(facility("east")), ..all.clone() };
    let by_month = store.quantiles(&east_only, Metric::Dlp, Grouping::Month).await.expect("quantiles");
    let months: Vec<(Option<&str>, f64)> = by_month.iter().map(|q| (q.month.as_deref(), q.median)).collect();
    assert_eq!(months, [(Some("2026-01"), 150.0), (Some("2026-02"), 350.0)]);
    let trends = store.quantiles(&east_only, Metric::Dlp, Grouping::DeviceMonth).await.expect("quantiles");
    let trends: Vec<(Option<i64>, Option<&str>, u64)> =
        trends.iter().map(|q| (q.device_id, q.month.as_deref(), q.exams)).collect();
    assert_eq!(trends, [(Some(devices[0].id), Some("2026-01"), 2), (Some(devices[1].id), Some("2026-02"), 2)]);
    // 10:00 in Japan on Thursday 1 January and on Sunday 1 February.
    let workload = store.workload(&east_only).await.expect("workload");
    let cells: Vec<(u8, u8, u64)> = workload.iter().map(|c| (c.weekday, c.hour, c.exams)).collect();
    assert_eq!(cells, [(0, 10, 2), (4, 10, 2)]);
    assert!(store.quantiles(&east_only, Metric::Dap, Grouping::Facility).await.expect("quantiles").is_empty());
    let ctdivol = store.quantiles(&east_only, Metric::Ctdivol, Grouping::Facility).await.expect("quantiles");
    assert_eq!((ctdivol[0].min, ctdivol[0].max), (10.0, 13.0));

    // Alert rules: one per facility, metric and window; set again replaces, None removes.
    let rule = |threshold: f64, weeks: u32| AlertRule {
        facility: "east".into(),
        metric: Metric::Dlp,
        weeks,
        threshold,
        set_by: "佐藤".into(),
        set_at: 5,
    };
    let east_id = facility("east");
    store.set_alert_rule(&east_id, Metric::Dlp, 0, Some(&rule(1000.0, 0))).await.expect("set");
    store.set_alert_rule(&east_id, Metric::Dlp, 0, Some(&rule(1200.5, 0))).await.expect("set");
    store.set_alert_rule(&east_id, Metric::Dlp, 12, Some(&rule(3000.0, 12))).await.expect("set");
    assert_eq!(store.alert_rules(Some(&east_id)).await.expect("rules"), vec![rule(1200.5, 0), rule(3000.0, 12)]);
    assert!(store.alert_rules(Some(&facility("west"))).await.expect("rules").is_empty());
    store.set_alert_rule(&east_id, Metric::Dlp, 0, None).await.expect("remove");
    assert_eq!(store.alert_rules(None).await.expect("rules"), vec![rule(3000.0, 12)]);
}
