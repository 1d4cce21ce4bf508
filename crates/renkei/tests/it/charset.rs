//! Japanese text end to end, checked against independent implementations: pydicom's
//! encoder and decoder, DCMTK's (dcmdump +U8) and pynetdicom's view of C-FIND responses.

use renkei_dicom::charset::{SpecificCharacterSet, TextKind};

use crate::harness::*;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn renkei_decodes_what_pydicom_encodes() {
    let output = python("pydicom_names.py", &["800"]);
    assert!(output.status.success(), "{}", text(&output));
    let listing = String::from_utf8(output.stdout).expect("utf-8");
    let (mut agreed, mut pydicom_misread, mut pydicom_lossy) = (0, 0, 0);
    for line in listing.lines() {
        let [charset, name, bytes, pydicom] = line.split('\t').collect::<Vec<_>>()[..] else {
            panic!("bad line {line:?}")
        };
        let set = SpecificCharacterSet::parse(charset);
        let bytes = hex(bytes);
        let ours = set.decode(&bytes, TextKind::PersonName);
        if pydicom == name {
            assert_eq!(ours.text, pydicom, "{charset}: {bytes:02x?}");
            assert!(ours.warnings.is_empty(), "{charset}: {name}: {:?}", ours.warnings);
            agreed += 1;
        } else if set.encode(name, TextKind::PersonName).as_deref() == Ok(&bytes[..]) {
            // pydicom wrote the right bytes but misread them (it splits components on bytes
            // such as 0x3D and 0x5E, which are halves of kana like ゾ in JIS X 0208).
            assert_eq!(ours.text, name, "{charset}: {bytes:02x?}");
            pydicom_misread += 1;
        } else {
            pydicom_lossy += 1;
        }
    }
    eprintln!(
        "agreed with pydicom: {agreed}; pydicom misread, Renkei right: {pydicom_misread}; pydicom lossy: {pydicom_lossy}"
    );
    assert!(agreed > 3000, "too few names to mean anything: {agreed}");
}

/// The Japanese patients of the corpus, as a Japanese PACS would query for them.
#[test]
fn names_are_found_by_kana_kanji_and_romaji_and_read_back_by_dcmtk_and_pydicom() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    fixture.store_with_dcmtk(&hub, "east", "STORESCU");
    fixture.store_with_dcmtk(&hub, "west", "WESTSCU");
    let yamada = "Yamada^Tarou=山田^太郎=やまだ^たろう";
    let tanaka = "ﾀﾅｶ^ｼﾞﾛｳ=田中^次郎=たなか^じろう";

    // pynetdicom, querying in ISO 2022 IR 87 and in UTF-8; pydicom decodes the responses.
    for (charset, pattern) in [
        ("\\ISO 2022 IR 87", "ヤマダ*"),
        ("\\ISO 2022 IR 87", "やまだ*"),
        ("\\ISO 2022 IR 87", "山田*"),
        ("", "Yamada*"),
        ("ISO_IR 192", "ﾔﾏﾀﾞ*"),
        ("ISO_IR 192", "*=山田^太郎"),
    ] {
        let output = python("find_names.py", &["127.0.0.1", &hub.port(), "EASTPY", "RENKEI", charset, pattern]);
        let report = text(&output);
        let names: Vec<String> =
            serde_json::from_str(report.lines().last().unwrap_or("")).unwrap_or_else(|_| panic!("{report}"));
        assert_eq!(names, vec![yamada], "{charset} {pattern}: {report}");
    }
    let output = python(
        "find_names.py",
        &["127.0.0.1", &hub.port(), "WESTSCU", "RENKEI", "ISO 2022 IR 13\\ISO 2022 IR 87", "たなか*"],
    );
    let names: Vec<String> = serde_json::from_str(text(&output).lines().last().unwrap_or("")).expect("json");
    assert_eq!(names, vec![tanaka]);

    // DCMTK: query in UTF-8, and with no character set (the answer then comes in the stored
    // ISO 2022 set). findscu writes each response to a file. DCMTK's own decoder (dcmdump +U8)
    // reads the UTF-8 answer; Debian builds DCMTK on glibc iconv, which cannot convert
    // ISO 2022 IR 87, so the ISO 2022 answers are read from the same files by pydicom.
    for (calling, keys, expected) in [
        ("STORESCU", vec!["SpecificCharacterSet=ISO_IR 192", "PatientName=やまだ*"], yamada),
        ("STORESCU", vec!["PatientName=Yamada*"], yamada),
        ("WESTSCU", vec!["PatientName=*", "PatientID=W0001"], tanaka),
    ] {
        let out = fixture.root.path().join(format!("responses-{calling}-{}", keys.len()));
        std::fs::create_dir_all(&out).expect("dir");
        let mut args = vec!["-P", "-X", "-od", out.to_str().expect("path"), "-aet", calling, "-aec", "RENKEI"];
        args.extend(["-k", "QueryRetrieveLevel=PATIENT"]);
        for key in &keys {
            args.extend(["-k", key]);
        }
        let port = hub.port();
        args.extend(["127.0.0.1", port.as_str()]);
        let found = dcmtk("findscu", &args);
        let responses = std::fs::read_dir(&out).expect("responses").count();
        assert_eq!(responses, 1, "{keys:?}: {}", text(&found));
        let response = out.join("rsp0001.dcm");
        let response = response.to_str().expect("path");
        if keys[0].starts_with("SpecificCharacterSet=ISO_IR 192") {
            let dumped = dcmtk("dcmdump", &["+U8", response]);
            assert!(text(&dumped).contains(&format!("[{expected}]")), "{keys:?}: {}", text(&dumped));
        } else {
            let dumped = dcmtk("dcmdump", &[response]);
            assert!(text(&dumped).contains("ISO 2022 IR 87"), "answered in the stored set: {}", text(&dumped));
            let read = python("read_name.py", &[response]);
            assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), expected, "{keys:?}: {}", text(&read));
        }
    }
}
