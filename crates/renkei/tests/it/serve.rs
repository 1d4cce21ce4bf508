//! The server as a process: readiness, health, configuration layers.

use std::io::{Read, Write};

use crate::harness::*;

#[test]
fn healthz_answers_once_ready() {
    let fixture = Fixture::new();
    let hub = Hub::start(&fixture.data_dir);
    let mut stream = std::net::TcpStream::connect(hub.http).expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: renkei\r\nConnection: close\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
}

#[test]
fn config_file_then_environment_then_flags() {
    let fixture = Fixture::new();
    let config = fixture.root.path().join("renkei.toml");
    std::fs::write(&config, "ae_title = \"FROMFILE\"\n[dicom]\nidle_timeout_secs = 60\n").expect("config");
    let config = config.to_str().expect("path");
    // The file sets the AE title; the environment overrides the file.
    let from_file = Hub::start_with(&fixture.data_dir, &[], &[("RENKEI_CONFIG", config)]);
    assert!(from_file.ready.ends_with("ae_title=FROMFILE"), "{}", from_file.ready);
    let echo = dcmtk("echoscu", &["-aet", "STORESCU", "-aec", "FROMFILE", "127.0.0.1", &from_file.port()]);
    assert!(echo.status.success(), "{}", text(&echo));
    drop(from_file);
    let from_env = Hub::start_with(&fixture.data_dir, &["--config", config], &[("RENKEI_AE_TITLE", "FROMENV")]);
    assert!(from_env.ready.ends_with("ae_title=FROMENV"), "{}", from_env.ready);
    drop(from_env);
    let from_flag = Hub::start_with(
        &fixture.data_dir,
        &["--config", config, "--ae-title", "FROMFLAG"],
        &[("RENKEI_AE_TITLE", "FROMENV")],
    );
    assert!(from_flag.ready.ends_with("ae_title=FROMFLAG"), "{}", from_flag.ready);
}
