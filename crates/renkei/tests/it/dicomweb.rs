//! DICOMweb end to end: tokens, QIDO-RS with a third-party client, problem bodies.

use std::io::{Read, Write};

use crate::harness::*;

/// One HTTP/1.1 request; returns the status, the head and the body.
fn http(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(hub.http).expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", hub.http);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let response = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head.to_owned(), body.to_owned())
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn token(fixture: &Fixture, args: &[&str]) -> String {
    let mut command = vec!["token", "create"];
    command.extend_from_slice(args);
    renkei(&fixture.data_dir, &command).lines().last().expect("token line").to_owned()
}

#[test]
fn qido_needs_a_token_and_sees_only_its_facility() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_with_dcmtk(&hub, "east", "STORESCU");
    fixture.store_with_dcmtk(&hub, "west", "WESTSCU");
    let east = token(&fixture, &["--facility", "east"]);
    let west = token(&fixture, &["--facility", "west"]);
    let admin = token(&fixture, &["--admin"]);
    let bearer = |token: &str| format!("Bearer {token}");

    let (status, head, body) = http(&hub, "/dicom-web/studies", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(head.to_lowercase().contains("www-authenticate: bearer"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
    assert_eq!(http(&hub, "/dicom-web/studies", &[("Authorization", "Bearer rk_0123")]).0, 401);

    let (status, head, body) = http(&hub, "/dicom-web/studies", &[("Authorization", &bearer(&east))]);
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("application/dicom+json"), "{head}");
    let studies: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(studies.len(), 6, "east's six studies");
    let (_, _, body) = http(&hub, "/dicom-web/studies", &[("Authorization", &bearer(&admin))]);
    let all = serde_json::from_str::<Vec<serde_json::Value>>(&body).expect("json").len();
    assert_eq!(all, 9, "admin sees all: six at east, three at west (one of them a twin of an east study)");

    // Another facility's study is not found, exactly like a study that does not exist. (Not
    // east's first study: west holds a copy of that one, under the same UID, of its own.)
    let east_study = &fixture.files("east")[3].study_uid;
    let path = format!("/dicom-web/studies/{east_study}/series");
    let (status, _, body) = http(&hub, &path, &[("Authorization", &bearer(&west))]);
    assert_eq!(status, 404, "{body}");
    let (_, _, missing) = http(&hub, "/dicom-web/studies/1.2.3.4/series", &[("Authorization", &bearer(&west))]);
    assert_eq!(body, missing, "nothing tells the two apart");
    let (status, _, body) = http(&hub, &path, &[("Authorization", &bearer(&east))]);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&body).expect("json").len(), 1, "the MR series");

    // Bad keys and unacceptable media types get problem bodies.
    let (status, _, body) = http(&hub, "/dicom-web/studies?StudyDate=2024-01", &[("Authorization", &bearer(&east))]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("StudyDate"), "{body}");
    let (status, _, _) =
        http(&hub, "/dicom-web/studies", &[("Authorization", &bearer(&east)), ("Accept", "image/png")]);
    assert_eq!(status, 406);
}

#[test]
fn qido_finds_japanese_names_by_kana_kanji_and_romaji() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_with_dcmtk(&hub, "east", "STORESCU");
    let east = token(&fixture, &["--facility", "east"]);
    let base = format!("http://{}", hub.http);
    let expected =
        serde_json::json!({ "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう" });
    for pattern in ["ヤマダ*", "やまだ*", "山田*", "Yamada*", "ﾔﾏﾀﾞ*"] {
        let output = python("qido_names.py", &[&base, &east, pattern]);
        let names: Vec<serde_json::Value> = serde_json::from_str(text(&output).lines().last().unwrap_or(""))
            .unwrap_or_else(|_| panic!("{pattern}: {}", text(&output)));
        assert_eq!(names.len(), 3, "{pattern}: Yamada's three studies: {names:?}");
        assert!(names.iter().all(|n| *n == expected), "{pattern}: {names:?}");
    }
    let output = python("qido_names.py", &[&base, &east, "Satoh*"]);
    assert_eq!(text(&output).lines().last(), Some("[]"));
    let output = python("qido_names.py", &[&base, &east, "Satoh*", "fuzzy"]);
    let names: Vec<serde_json::Value> = serde_json::from_str(text(&output).lines().last().unwrap_or("")).expect("json");
    assert_eq!(names.len(), 3, "fuzzymatching folds Satoh to Sato: {}", text(&output));
    // The same through the raw API, with the pattern percent-encoded.
    let path = format!("/dicom-web/studies?PatientName={}", encode("やまだ*"));
    let (status, _, body) = http(&hub, &path, &[("Authorization", &format!("Bearer {east}"))]);
    assert_eq!(status, 200);
    assert!(body.contains("\"Ideographic\":\"山田^太郎\""), "{body}");
}
