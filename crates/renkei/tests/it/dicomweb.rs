//! DICOMweb end to end: tokens, QIDO-RS with a third-party client, problem bodies.

use std::io::{Read, Write};

use crate::harness::*;

/// One HTTP/1.1 GET; returns the status, the head and the body.
pub(crate) fn http(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    request(hub, "GET", path, headers, &[])
}

/// One HTTP/1.1 request with a body (and Content-Length, unless the headers set it).
pub(crate) fn request(
    hub: &Hub,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(hub.http).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", hub.http);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-length")) {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    // The server may answer before reading a body it refuses; a broken pipe then is fine.
    let _ = stream.write_all(body);
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

pub(crate) fn token(fixture: &Fixture, args: &[&str]) -> String {
    let mut command = vec!["token", "create"];
    command.extend_from_slice(args);
    fixture.admin(&command).lines().last().expect("token line").to_owned()
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
    // Pages run across facilities: three pages of four hold the nine studies once each.
    let listed = |path: &str| -> Vec<String> {
        let (_, _, body) = http(&hub, path, &[("Authorization", &bearer(&admin))]);
        serde_json::from_str::<Vec<serde_json::Value>>(&body).expect("json").iter().map(|s| s.to_string()).collect()
    };
    let mut paged = Vec::new();
    for offset in [0, 4, 8] {
        let page = listed(&format!("/dicom-web/studies?limit=4&offset={offset}"));
        assert_eq!(page.len(), if offset == 8 { 1 } else { 4 }, "offset {offset}");
        paged.extend(page);
    }
    let mut everything = listed("/dicom-web/studies");
    paged.sort();
    everything.sort();
    assert_eq!(paged, everything, "every study on exactly one page");

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

/// A `multipart/related` body of the given parts, each `application/dicom`.
fn multipart(parts: &[Vec<u8>], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

const STOW_TYPE: &str = "multipart/related; type=\"application/dicom\"; boundary=renkei-boundary";

#[test]
fn stow_stores_byte_for_byte_and_is_seen_over_dimse_and_qido() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let uploader = token(&fixture, &["--facility", "east", "--role", "uploader"]);
    let auth = format!("Bearer {uploader}");
    let files: Vec<_> = fixture.files("east");
    let parts: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(&f.path).expect("read")).collect();
    let (status, head, body) = request(
        &hub,
        "POST",
        "/dicom-web/studies",
        &[("Authorization", &auth), ("Content-Type", STOW_TYPE)],
        &multipart(&parts, "renkei-boundary"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("application/dicom+json"), "{head}");
    let response: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(response["00081199"]["Value"].as_array().map(Vec::len), Some(files.len()), "{body}");
    assert!(response.get("00081198").is_none(), "{body}");
    let stored = blobs(&fixture.data_dir);
    for file in &files {
        assert!(stored.contains(&dataset_bytes(&file.path)), "{} not kept as sent", file.modality);
    }
    // Stored over DICOMweb, found over DIMSE.
    assert_eq!(image_count(&hub, "STORESCU"), files.len());

    // Stored over DIMSE, found over QIDO; and a third-party client's STOW.
    fixture.store_with_dcmtk(&hub, "west", "WESTSCU");
    let west = token(&fixture, &["--facility", "west", "--role", "uploader"]);
    let (_, _, body) = http(&hub, "/dicom-web/instances", &[("Authorization", &format!("Bearer {west}"))]);
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&body).expect("json").len(), fixture.files("west").len());
    let base = format!("http://{}", hub.http);
    let mr: Vec<String> = files.iter().filter(|f| f.modality == "MR").map(|f| f.path.display().to_string()).collect();
    let mut args = vec![base.clone(), west.clone()];
    args.extend(mr);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = python("stow_files.py", &refs);
    assert!(text(&output).contains("\"referenced\": 2, \"failed\": 0"), "{}", text(&output));
    let (_, _, body) =
        http(&hub, "/dicom-web/studies?ModalitiesInStudy=MR", &[("Authorization", &format!("Bearer {west}"))]);
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&body).expect("json").len(), 2, "{body}");
}

#[test]
fn stow_refuses_bad_requests_and_stores_nothing_from_them() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let uploader = format!("Bearer {}", token(&fixture, &["--facility", "east", "--role", "uploader"]));
    let viewer = format!("Bearer {}", token(&fixture, &["--facility", "east"]));
    let file = std::fs::read(&fixture.files("east")[0].path).expect("read");
    let good = multipart(std::slice::from_ref(&file), "renkei-boundary");
    let post = |auth: &str, content_type: &str, path: &str, body: &[u8]| {
        request(&hub, "POST", path, &[("Authorization", auth), ("Content-Type", content_type)], body)
    };

    assert_eq!(post(&viewer, STOW_TYPE, "/dicom-web/studies", &good).0, 403, "viewers do not store");
    let (status, head, _) = post(&uploader, "application/dicom", "/dicom-web/studies", &file);
    assert_eq!(status, 415);
    assert!(head.contains("application/problem+json"), "{head}");
    assert_eq!(post(&uploader, "multipart/related; type=\"application/dicom\"", "/dicom-web/studies", &good).0, 400);
    // Cut short: the first part arrived whole, the second did not, and the body never ended.
    let second = std::fs::read(&fixture.files("east")[1].path).expect("read");
    let two = multipart(&[file.clone(), second.clone()], "renkei-boundary");
    let cut = &two[..two.len() - second.len() / 2];
    let (status, _, body) = post(&uploader, STOW_TYPE, "/dicom-web/studies", cut);
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = request(
        &hub,
        "POST",
        "/dicom-web/studies",
        &[("Authorization", &uploader), ("Content-Type", STOW_TYPE), ("Content-Length", "999999999999999")],
        b"",
    );
    assert_eq!(status, 413);
    // A part that is not DICOM, and an instance sent to another study's URL.
    let (status, _, body) =
        post(&uploader, STOW_TYPE, "/dicom-web/studies", &multipart(&[b"not dicom".to_vec()], "renkei-boundary"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"00081197\":{\"Value\":[49152]"), "0xC000: {body}");
    let (status, _, body) = post(&uploader, STOW_TYPE, "/dicom-web/studies/1.2.3.4", &good);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("[43264]"), "0xA900: {body}");
    assert_eq!(image_count(&hub, "STORESCU"), 0, "nothing from a refused request is indexed");
    assert!(blobs(&fixture.data_dir).is_empty(), "nor kept on disk, not even the part that arrived whole");
    assert!(
        std::fs::read_dir(fixture.data_dir.join("tmp")).expect("tmp").next().is_none(),
        "and no temporary file is left"
    );
    // And the archive still takes a good request.
    assert_eq!(post(&uploader, STOW_TYPE, "/dicom-web/studies", &good).0, 200);
    assert_eq!(image_count(&hub, "STORESCU"), 1);
}

/// GET returning the raw body, de-chunked.
pub(crate) fn get_bytes(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(hub.http).expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", hub.http);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let mut body = response[split..].to_vec();
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).expect("ascii").trim(), 16).expect("hex");
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = plain;
    }
    (status, head, body)
}

/// The boundary of a multipart response, from its head.
pub(crate) fn boundary_of(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.to_lowercase()
                .starts_with("content-type:")
                .then(|| l.split("boundary=").nth(1).map(str::trim).map(str::to_owned))
        })
        .flatten()
        .expect("boundary")
}

/// The parts of a multipart body.
pub(crate) fn parts(body: &[u8], boundary: &str) -> Vec<Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.windows(delimiter.len()).position(|w| w == delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("part head") + 4;
        let next = rest.windows(delimiter.len()).position(|w| w == delimiter.as_bytes()).expect("next delimiter");
        found.push(rest[head_end..next - 2].to_vec());
        rest = &rest[next..];
    }
    found
}

#[test]
fn wado_returns_every_instance_byte_for_byte() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    let east = token(&fixture, &["--facility", "east"]);
    let west = token(&fixture, &["--facility", "west"]);
    let ct = fixture.files("east")[0];
    let study_files: Vec<_> = fixture.files("east").into_iter().filter(|f| f.study_uid == ct.study_uid).collect();
    let accept = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
    let path = format!("/dicom-web/studies/{}", ct.study_uid);
    let (status, head, body) =
        get_bytes(&hub, &path, &[("Authorization", &format!("Bearer {east}")), ("Accept", accept)]);
    assert_eq!(status, 200, "{head}");
    let received = parts(&body, &boundary_of(&head));
    assert_eq!(received.len(), study_files.len());
    for part in &received {
        let renkei_service::Part10Prefix::Header { dataset_offset, sop_instance, .. } =
            renkei_service::part10_prefix(part)
        else {
            panic!("a part that is not Part-10")
        };
        let original = study_files
            .iter()
            .find(|f| Some(f.sop_instance_uid.as_str()) == sop_instance.as_ref().map(|u| u.as_str()))
            .expect("a sent instance");
        assert!(part[dataset_offset..] == dataset_bytes(&original.path)[..], "{} altered", original.modality);
    }
    // One instance; another facility's study; and an Accept that cannot be met.
    let one = format!("{path}/series/{}/instances/{}", ct.series_uid, ct.sop_instance_uid);
    let (status, _, body) = get_bytes(&hub, &one, &[("Authorization", &format!("Bearer {east}")), ("Accept", accept)]);
    assert_eq!((status, parts(&body, "renkei-wado-boundary").len()), (200, 1));
    assert_eq!(get_bytes(&hub, &path, &[("Authorization", &format!("Bearer {west}"))]).0, 404);
    assert_eq!(
        get_bytes(&hub, &path, &[("Authorization", &format!("Bearer {east}")), ("Accept", "image/jpeg")]).0,
        406
    );
    // A third-party client retrieves the same study.
    let base = format!("http://{}", hub.http);
    let output = python("wado_study.py", &[&base, &east, &ct.study_uid]);
    let mut expected: Vec<&str> = study_files.iter().map(|f| f.sop_instance_uid.as_str()).collect();
    expected.sort();
    let retrieved: serde_json::Value = serde_json::from_str(text(&output).lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("{}", text(&output)));
    assert_eq!(retrieved["instances"], serde_json::json!(expected));
    assert_eq!(
        retrieved["names"],
        serde_json::json!(vec!["山田^太郎"; expected.len()]),
        "metadata, decoded from ISO 2022"
    );
}

#[test]
fn metadata_has_every_attribute_and_bulk_data_uris_that_resolve() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    let auth = format!("Bearer {}", token(&fixture, &["--facility", "east"]));
    let ct = fixture.files("east")[0];
    let (status, head, body) =
        http(&hub, &format!("/dicom-web/studies/{}/metadata", ct.study_uid), &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("application/dicom+json"), "{head}");
    let instances: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(instances.len(), 4, "three CT slices and the dose report");
    let slice =
        instances.iter().find(|i| i["00080018"]["Value"][0] == ct.sop_instance_uid.as_str()).expect("the first slice");
    assert_eq!(
        slice["00100010"]["Value"][0],
        serde_json::json!({ "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう" })
    );
    assert_eq!(slice["00280010"], serde_json::json!({ "vr": "US", "Value": [128] }));
    let report = instances.iter().find(|i| i["00080060"]["Value"][0] == "SR").expect("the dose report");
    let item = &report["0040A730"]["Value"][0];
    assert_eq!(item["0040A043"]["Value"][0]["00080100"]["Value"][0], "113813", "nested content items: {item}");
    // Pixel data is a Bulk Data URI that gives back exactly the pixel bytes.
    let uri = slice["7FE00010"]["BulkDataURI"].as_str().expect("bulk data URI");
    let path = &uri[uri.find("/dicom-web/").expect("path")..];
    let (status, head, body) = get_bytes(&hub, path, &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{head}");
    let pixels = &parts(&body, "renkei-bulk-boundary")[0];
    let dataset = dataset_bytes(&ct.path);
    assert_eq!(pixels.len(), 128 * 128 * 2);
    assert!(pixels[..] == dataset[dataset.len() - pixels.len()..], "pixel data bytes differ");
    assert_eq!(get_bytes(&hub, &path.replace("bulkdata/", "bulkdata/9"), &[("Authorization", &auth)]).0, 404);
}

#[test]
fn metadata_of_a_large_series_lists_every_instance_once() {
    use renkei_testkit::generate::{CT_IMAGE, ct_slice, dataset, part10};
    let fixture = Fixture::new();
    let slices = fixture.root.path().join("slices");
    std::fs::create_dir_all(&slices).expect("dir");
    let specs: Vec<_> = (0..40).map(|n| ct_slice(16, n)).collect();
    for spec in &specs {
        let file = part10(&dataset(spec), CT_IMAGE, &spec.sop_instance_uid, &spec.transfer_syntax);
        std::fs::write(slices.join(format!("{}.dcm", spec.instance_number)), file).expect("slice written");
    }
    renkei(&fixture.data_dir, &["import", slices.to_str().expect("utf-8"), "--facility", "east"]);
    let hub = Hub::start(&fixture.data_dir);
    let auth = format!("Bearer {}", token(&fixture, &["--facility", "east"]));
    let path = format!("/dicom-web/studies/{}/series/{}/metadata", specs[0].study_uid, specs[0].series_uid);
    let (status, _, body) = http(&hub, &path, &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{body}");
    let instances: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    let mut listed: Vec<(String, u64)> = instances
        .iter()
        .map(|i| {
            let uid = i["00080018"]["Value"][0].as_str().expect("SOP Instance UID").to_owned();
            (uid, i["00200013"]["Value"][0].as_u64().expect("Instance Number"))
        })
        .collect();
    listed.sort_by_key(|(_, number)| *number);
    let expected: Vec<(String, u64)> =
        specs.iter().map(|s| (s.sop_instance_uid.clone(), u64::from(s.instance_number))).collect();
    assert_eq!(listed, expected, "each slice exactly once, with its own attributes");
}

/// A PNG's width, height, colour channels and pixels.
fn png_image(bytes: &[u8]) -> (u32, u32, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    pixels.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), pixels)
}

#[test]
fn frames_rendered_images_and_thumbnails() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    let auth = format!("Bearer {}", token(&fixture, &["--facility", "east"]));
    let url = |f: &renkei_testkit::corpus::CorpusFile| {
        format!("/dicom-web/studies/{}/series/{}/instances/{}", f.study_uid, f.series_uid, f.sop_instance_uid)
    };
    let png = [("Authorization", auth.as_str()), ("Accept", "image/png")];
    let find = |modality: &str| fixture.files("east").into_iter().find(|f| f.modality == modality).expect("in corpus");

    // A native 16-bit CT slice, windowed.
    let ct = find("CT");
    let (status, head, body) = get_bytes(&hub, &format!("{}/rendered?window=300,600", url(ct)), &png);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("image/png"), "{head}");
    let (width, height, channels, pixels) = png_image(&body);
    assert_eq!((width, height, channels), (128, 128, 1));
    assert!(pixels.iter().any(|p| *p != pixels[0]), "a real image, not a flat one");
    // The same window through the sigmoid function is another image of the same slice.
    let (status, _, body) = get_bytes(&hub, &format!("{}/rendered?window=300,600,sigmoid", url(ct)), &png);
    assert_eq!(status, 200);
    let sigmoid = png_image(&body).3;
    assert!(sigmoid.len() == pixels.len() && sigmoid != pixels, "sigmoid differs from linear");
    // A viewport scales the 128×128 slice to fit, either way, keeping its aspect ratio.
    for (viewport, side) in [("64,64", 64), ("256,100", 100), ("256,256", 256)] {
        let (status, _, body) = get_bytes(&hub, &format!("{}/rendered?viewport={viewport}", url(ct)), &png);
        assert_eq!((status, png_image(&body).0, png_image(&body).1), (200, side, side), "viewport {viewport}");
    }
    assert_eq!(get_bytes(&hub, &format!("{}/rendered?viewport=0,64", url(ct)), &png).0, 400);
    let jpeg_size = |quality: &str| {
        let path = format!("{}/rendered?quality={quality}", url(ct));
        get_bytes(&hub, &path, &[("Authorization", &auth), ("Accept", "image/jpeg")]).2.len()
    };
    assert!(jpeg_size("20") < jpeg_size("95"), "JPEG quality is honoured");
    // The default is JPEG.
    let (status, head, body) = get_bytes(&hub, &format!("{}/rendered", url(ct)), &[("Authorization", &auth)]);
    assert_eq!(status, 200);
    assert!(head.contains("image/jpeg") && body.starts_with(&[0xFF, 0xD8]), "{head}");
    // The frame as stored is the pixel data itself.
    let (_, _, body) = get_bytes(&hub, &format!("{}/frames/1", url(ct)), &[("Authorization", &auth)]);
    let frame = &parts(&body, "renkei-frame-boundary")[0];
    let dataset = dataset_bytes(&ct.path);
    assert!(frame[..] == dataset[dataset.len() - frame.len()..] && frame.len() == 128 * 128 * 2);

    // An RLE multi-frame colour ultrasound: frame 3 of 4.
    let us = find("US");
    let (status, _, body) = get_bytes(&hub, &format!("{}/frames/3/rendered", url(us)), &png);
    assert_eq!(status, 200);
    let (width, height, channels, _) = png_image(&body);
    assert_eq!((width, height, channels), (160, 120, 3), "an RGB frame, 160 columns by 120 rows");
    assert_eq!(get_bytes(&hub, &format!("{}/frames/5/rendered", url(us)), &png).0, 404, "there are four frames");

    // Thumbnails fit 128 pixels: the 400x512 CR becomes 100x128.
    let cr = find("CR");
    let (status, _, body) = get_bytes(&hub, &format!("{}/thumbnail", url(cr)), &png);
    assert_eq!(status, 200);
    let (width, height, _, _) = png_image(&body);
    assert_eq!((width, height), (100, 128));
    let (status, _, body) =
        get_bytes(&hub, &format!("/dicom-web/studies/{}/series/{}/thumbnail", ct.study_uid, ct.series_uid), &png);
    assert_eq!((status, png_image(&body).0), (200, 128));
    let (status, _, body) = get_bytes(&hub, &format!("{}/frames/2/thumbnail", url(us)), &png);
    assert_eq!(status, 200);
    assert_eq!(png_image(&body).0, 128, "frame 2 of the ultrasound, 160 wide, made 128 wide");
    // A study's thumbnail skips its dose report; rendering a study or series gives one image per
    // instance with pixel data: the CT study is three slices and a dose report.
    let study = format!("/dicom-web/studies/{}", ct.study_uid);
    let (status, _, body) = get_bytes(&hub, &format!("{study}/thumbnail"), &png);
    assert_eq!((status, png_image(&body).0), (200, 128));
    let slices =
        fixture.files("east").into_iter().filter(|f| f.study_uid == ct.study_uid && f.modality == "CT").count();
    assert_eq!(slices, 3);
    for path in [format!("{study}/rendered"), format!("{study}/series/{}/rendered", ct.series_uid)] {
        let (status, head, body) = get_bytes(&hub, &path, &png);
        assert_eq!(status, 200, "{path}: {head}");
        assert!(head.contains("multipart/related; type=\"image/png\""), "{head}");
        let images = parts(&body, "renkei-rendered-boundary");
        assert_eq!(images.len(), slices, "{path}");
        assert!(images.iter().all(|image| png_image(image).0 == 128));
    }

    // JPEG Lossless made by DCMTK renders exactly like the uncompressed original. The corpus
    // CR is deflated; DCMTK writes it out plain first, then compresses that. Both are the same
    // SOP instance, so each send makes a new current version, rendered right after it lands.
    let plain = fixture.root.path().join("cr-plain.dcm");
    let lossless = fixture.root.path().join("cr-lossless.dcm");
    let (plain, lossless) = (plain.to_str().expect("path"), lossless.to_str().expect("path"));
    let converted = dcmtk("dcmconv", &["+te", cr.path.to_str().expect("path"), plain]);
    assert!(converted.status.success(), "{}", text(&converted));
    let compressed = dcmtk("dcmcjpeg", &["+e1", plain, lossless]);
    assert!(compressed.status.success(), "{}", text(&compressed));
    let mut renderings = Vec::new();
    for file in [plain, lossless] {
        let sent = python("send_raw.py", &["127.0.0.1", &hub.port(), "EASTPY", "RENKEI", file]);
        assert!(text(&sent).contains("\"status\": 0"), "{}", text(&sent));
        let (status, _, body) = get_bytes(&hub, &format!("{}/rendered", url(cr)), &png);
        assert_eq!(status, 200, "{file} renders");
        renderings.push(png_image(&body).3);
    }
    assert!(renderings[0] == renderings[1], "lossless compression must render identically");

    // No pixel data, an unacceptable format, a bad window.
    let pdf = find("DOC");
    assert_eq!(get_bytes(&hub, &format!("{}/rendered", url(pdf)), &png).0, 404);
    assert_eq!(
        get_bytes(&hub, &format!("{}/rendered", url(ct)), &[("Authorization", &auth), ("Accept", "text/html")]).0,
        406
    );
    assert_eq!(get_bytes(&hub, &format!("{}/rendered?window=40", url(ct)), &png).0, 400);
}

/// What `dcmdump` shows of a file's data set but its pixel data, without what legitimately
/// differs between two encodings of it: the file meta, group lengths, item delimiters and
/// length comments.
fn dump(path: &std::path::Path) -> Vec<String> {
    let output = dcmtk("dcmdump", &["-q", path.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim_end().to_owned())
        .filter(|line| {
            let element = line.trim_start();
            !(element.is_empty()
                || element.starts_with("(0002,")
                || element.starts_with("(fffe,")
                || element.starts_with("(7fe0,0010)")
                || element.get(5..11) == Some(",0000)"))
        })
        .map(|line| match line.find(" SQ (") {
            Some(at) => line[..at + 3].to_owned(),
            None => line,
        })
        .collect()
}

#[test]
fn legacy_and_compressed_encodings_are_decoded_and_transcoded() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    let auth = format!("Bearer {}", token(&fixture, &["--facility", "east"]));
    let find = |modality: &str| fixture.files("east").into_iter().find(|f| f.modality == modality).expect("in corpus");
    let dir = fixture.root.path();
    let file = |name: &str| dir.join(name).to_str().expect("path").to_owned();
    let run = |output: std::process::Output| assert!(output.status.success(), "{}", text(&output));

    // The 16-bit CT slice (Explicit VR Little Endian, Japanese names in ISO 2022 IR 87), in
    // every other encoding DCMTK and Pillow's OpenJPEG can make of it. Each send is the same
    // SOP instance, so it becomes the current version, retrieved right after it lands.
    let ct = find("CT");
    let plain = ct.path.to_str().expect("path");
    run(dcmtk("dcmconv", &["+ti", plain, &file("implicit.dcm")]));
    run(dcmtk("dcmconv", &["+tb", plain, &file("big-endian.dcm")]));
    run(dcmtk("dcmconv", &["+td", plain, &file("deflated.dcm")]));
    run(dcmtk("dcmcjpeg", &["+e1", plain, &file("jpeg-lossless.dcm")]));
    run(dcmtk("dcmcjpls", &[plain, &file("jpeg-ls.dcm")]));
    run(dcmtk("dcmcjpls", &["+en", "--max-deviation", "2", "--uid-never", plain, &file("jpeg-ls-near.dcm")]));
    run(python("j2k_encode.py", &[plain, &file("jpeg-2000.dcm")]));
    let instance =
        format!("/dicom-web/studies/{}/series/{}/instances/{}", ct.study_uid, ct.series_uid, ct.sop_instance_uid);
    let reference_pixels = pixel_data(&ct.path);
    let png = [("Authorization", auth.as_str()), ("Accept", "image/png")];
    let reference_png = png_image(&get_bytes(&hub, &format!("{instance}/rendered"), &png).2).3;
    let default = [("Authorization", auth.as_str()), ("Accept", "multipart/related; type=\"application/dicom\"")];
    let as_stored = [
        ("Authorization", auth.as_str()),
        ("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=*"),
    ];
    let implicit = [
        ("Authorization", auth.as_str()),
        ("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2"),
    ];

    for (name, stored_syntax, lossless) in [
        ("implicit.dcm", "1.2.840.10008.1.2", true),
        ("big-endian.dcm", "1.2.840.10008.1.2.2", true),
        ("deflated.dcm", "1.2.840.10008.1.2.1.99", true),
        ("jpeg-lossless.dcm", "1.2.840.10008.1.2.4.70", true),
        ("jpeg-ls.dcm", "1.2.840.10008.1.2.4.80", true),
        ("jpeg-ls-near.dcm", "1.2.840.10008.1.2.4.81", false),
        ("jpeg-2000.dcm", "1.2.840.10008.1.2.4.90", true),
    ] {
        let sent = dir.join(name);
        let output = python("send_raw.py", &["127.0.0.1", &hub.port(), "EASTPY", "RENKEI", &file(name)]);
        assert!(text(&output).contains("\"status\": 0"), "{name}: {}", text(&output));

        // transfer-syntax=* gives the stored bytes, in the stored syntax.
        let (status, _, body) = get_bytes(&hub, &instance, &as_stored);
        assert_eq!(status, 200, "{name}");
        assert!(String::from_utf8_lossy(&body).contains(&format!("transfer-syntax={stored_syntax}")), "{name}");
        let stored = &parts(&body, "renkei-wado-boundary")[0];
        assert!(stored.ends_with(&dataset_bytes(&sent)), "{name} as stored, byte for byte");

        // No syntax named: Explicit VR Little Endian, every attribute as DCMTK reads it in
        // what was sent, the pixels decoded.
        let (status, _, body) = get_bytes(&hub, &instance, &default);
        assert_eq!(status, 200, "{name}");
        assert!(String::from_utf8_lossy(&body).contains("transfer-syntax=1.2.840.10008.1.2.1\r\n"), "{name}");
        let transcoded = dir.join(format!("transcoded-{name}"));
        std::fs::write(&transcoded, &parts(&body, "renkei-wado-boundary")[0]).expect("write");
        let (mut got, mut expected) = (dump(&transcoded), dump(&sent));
        let decoded = pixel_data(&transcoded);
        if !lossless {
            // Near-lossless pixels differ by up to NEAR, and the object says it was lossy.
            assert!(got.iter().any(|line| line.starts_with("(0028,2110) CS [01]")), "{name}: {got:?}");
            got.retain(|line| !line.starts_with("(0028,2110)"));
            expected.retain(|line| !line.starts_with("(0028,2110)"));
            assert_eq!(got, expected, "{name}");
            let deviation = decoded
                .chunks(2)
                .zip(reference_pixels.chunks(2))
                .map(|(a, b)| {
                    (i32::from(u16::from_le_bytes([a[0], a[1]])) - i32::from(u16::from_le_bytes([b[0], b[1]]))).abs()
                })
                .max();
            assert_eq!((decoded.len(), deviation.map(|d| d <= 2)), (reference_pixels.len(), Some(true)), "{name}");
            continue;
        }
        assert_eq!(got, expected, "{name}");
        assert!(decoded == reference_pixels, "{name}: pixels identical to the original");
        // Implicit VR Little Endian, when that is what is asked for.
        let (status, _, body) = get_bytes(&hub, &instance, &implicit);
        assert_eq!(status, 200, "{name}");
        assert!(String::from_utf8_lossy(&body).contains("transfer-syntax=1.2.840.10008.1.2\r\n"), "{name}");
        let implicit_file = dir.join(format!("implicit-{name}"));
        std::fs::write(&implicit_file, &parts(&body, "renkei-wado-boundary")[0]).expect("write");
        assert_eq!(dump(&implicit_file), expected, "{name} in Implicit VR Little Endian");
        assert!(pixel_data(&implicit_file) == reference_pixels, "{name}: implicit, pixels identical");

        // Frames come uncompressed unless asked for as stored; renderings match the original's.
        let (status, _, body) = get_bytes(&hub, &format!("{instance}/frames/1"), &[("Authorization", &auth)]);
        assert_eq!(status, 200, "{name}");
        assert!(parts(&body, "renkei-frame-boundary")[0] == reference_pixels, "{name}: frame 1 decoded");
        let rendering = png_image(&get_bytes(&hub, &format!("{instance}/rendered"), &png).2).3;
        assert!(rendering == reference_png, "{name} renders like the original");
    }

    // 12-bit JPEG (extended, process 4) is beyond the JPEG decoder. With no syntax named,
    // the object goes whole, as stored, in a part labelled with its own syntax.
    let extended = file("jpeg-extended.dcm");
    run(dcmtk("dcmcjpeg", &["+ee", "--uid-never", plain, &extended]));
    let sent = python("send_raw.py", &["127.0.0.1", &hub.port(), "EASTPY", "RENKEI", &extended]);
    assert!(text(&sent).contains("\"status\": 0"), "{}", text(&sent));
    let (status, _, body) = get_bytes(&hub, &instance, &default);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("transfer-syntax=1.2.840.10008.1.2.4.51\r\n"));
    let part = &parts(&body, "renkei-wado-boundary")[0];
    assert!(part.ends_with(&dataset_bytes(std::path::Path::new(&extended))), "sent whole, as stored");

    // A syntax renkei does not encode to is refused, not silently replaced.
    let jpeg_baseline = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50";
    let (status, head, _) = get_bytes(&hub, &instance, &[("Authorization", &auth), ("Accept", jpeg_baseline)]);
    assert_eq!(status, 406, "{head}");

    // A colour multi-frame RLE ultrasound decodes to the frames DCMTK's own decoder makes.
    let us = find("US");
    run(dcmtk("dcmdrle", &[us.path.to_str().expect("path"), &file("us-plain.dcm")]));
    let (status, _, body) = get_bytes(
        &hub,
        &format!("/dicom-web/studies/{}/series/{}/instances/{}", us.study_uid, us.series_uid, us.sop_instance_uid),
        &default,
    );
    assert_eq!(status, 200);
    let transcoded = dir.join("us-transcoded.dcm");
    std::fs::write(&transcoded, &parts(&body, "renkei-wado-boundary")[0]).expect("write");
    assert_eq!(dump(&transcoded), dump(&dir.join("us-plain.dcm")));
    assert!(pixel_data(&transcoded) == pixel_data(&dir.join("us-plain.dcm")), "four RGB frames, as DCMTK decodes them");
}

#[test]
fn the_web_console_works_in_headless_chromium() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_raw(&hub, "east", "EASTPY");
    let viewer = token(&fixture, &["--facility", "east"]);
    let (status, head, body) = http(&hub, "/", &[]);
    assert_eq!(status, 200, "the console loads without a token");
    assert!(head.contains("text/html") && body.contains("/console.js"), "{head}");
    let shots = ["studies.png", "study.png", "viewer.png"];
    run_console_script(&fixture, &hub, "console.test.mjs", &viewer, &[], "console ok", &shots);
}
