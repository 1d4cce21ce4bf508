//! Test harness: the real `renkei` binary on ephemeral ports, the real DCMTK tools and
//! pynetdicom, and the synthetic corpus.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use renkei_testkit::corpus::{self, CorpusFile};

pub const RENKEI: &str = env!("CARGO_BIN_EXE_renkei");

/// A running `renkei serve` on ephemeral loopback ports.
pub struct Hub {
    pub dicom: SocketAddr,
    pub http: SocketAddr,
    /// The readiness line, as printed.
    pub ready: String,
    child: Child,
}

impl Hub {
    /// Starts the server and waits for its readiness line (printed once both listeners are
    /// bound and the index is open).
    pub fn start(data_dir: &Path) -> Hub {
        Self::start_with(data_dir, &[], &[])
    }

    /// Starts the server with extra arguments and environment variables.
    pub fn start_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("server log file");
        let mut child = Command::new(RENKEI)
            .args(["serve", "--http-listen", "127.0.0.1:0", "--dicom-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RENKEI_LOG", "renkei=debug,info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("renkei starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("readiness line");
        assert!(
            line.starts_with("renkei ready"),
            "server did not become ready: {line:?}; see {}",
            data_dir.with_extension("log").display()
        );
        let field = |name: &str| -> String {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned()
        };
        let dicom = field("dicom").parse().expect("dicom address");
        let http = field("http").parse().expect("http address");
        Hub { dicom, http, ready: line.trim().to_owned(), child }
    }

    /// Peak resident memory of the server so far, in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kib * 1024
    }

    pub fn port(&self) -> String {
        self.dicom.port().to_string()
    }

    /// Kills the server with SIGKILL: no shutdown, no flushing.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `renkei` admin command on `data_dir` and returns its stdout; fails the test on error.
pub fn renkei(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(RENKEI).args(args).arg("--data-dir").arg(data_dir).output().expect("renkei runs");
    assert!(output.status.success(), "renkei {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a DCMTK tool from Debian's package, verbose so that responses are logged (by absolute
/// path: pynetdicom installs apps of the same names).
pub fn dcmtk(tool: &str, args: &[&str]) -> Output {
    let path = Path::new("/usr/bin").join(tool);
    assert!(path.exists(), "{} is missing: install Debian's dcmtk (see .ci/run)", path.display());
    Command::new(path).arg("-v").args(args).output().expect("dcmtk tool runs")
}

/// Both output streams of a process, for matching DCMTK's log lines.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs one of the pynetdicom scripts in tests/py.
pub fn python(script: &str, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
    Command::new("python3").arg(path).args(args).output().expect("python3 runs")
}

/// A port that was free a moment ago, for peers (storescp) that must bind their own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A data directory with facilities `east` (AE titles STORESCU, EASTPY, EASTGET) and `west`
/// (WESTSCU), and the corpus written beside it.
pub struct Fixture {
    pub root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub corpus: Vec<CorpusFile>,
    /// Arguments that choose the index (none: SQLite in the data directory).
    pub index_args: Vec<String>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::with_index(&[])
    }

    /// A fixture whose index is a PostgreSQL database.
    pub fn on_postgres(url: &str) -> Fixture {
        Self::with_index(&["--database-url", url])
    }

    fn with_index(index_args: &[&str]) -> Fixture {
        let root = tempfile::tempdir().expect("temp dir");
        let data_dir = root.path().join("data");
        let corpus = corpus::write(&root.path().join("corpus")).expect("corpus written");
        let index_args: Vec<String> = index_args.iter().map(|a| a.to_string()).collect();
        let fixture = Fixture { root, data_dir, corpus, index_args };
        fixture.admin(&[
            "facility",
            "add",
            "east",
            "--name",
            "East Hospital",
            "--ae",
            "STORESCU",
            "--ae",
            "EASTPY",
            "--ae",
            "EASTGET",
        ]);
        fixture.admin(&["facility", "add", "west", "--name", "West Clinic", "--ae", "WESTSCU"]);
        fixture
    }

    /// Runs a `renkei` admin command on this fixture's data directory and index.
    pub fn admin(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.index_args.iter().map(String::as_str));
        renkei(&self.data_dir, &all)
    }

    /// Starts a server on this fixture's index, with its data directory at `data_dir` (the
    /// fixture's own, or another path to the same shared volume).
    pub fn serve(&self, data_dir: &Path) -> Hub {
        let args: Vec<&str> = self.index_args.iter().map(String::as_str).collect();
        Hub::start_with(data_dir, &args, &[])
    }

    pub fn files(&self, facility: &str) -> Vec<&CorpusFile> {
        self.corpus.iter().filter(|f| f.facility == facility).collect()
    }

    /// Stores one facility's corpus files with DCMTK's storescu (private classes, which
    /// storescu refuses, with pynetdicom). storescu re-encodes what it sends, so byte-for-byte
    /// checks use [`Fixture::store_raw`] instead.
    pub fn store_with_dcmtk(&self, hub: &Hub, facility: &str, calling: &str) {
        for file in self.files(facility) {
            let path = file.path.to_str().expect("utf-8 path");
            if file.sop_class_uid.starts_with("2.25.") {
                let output = python("send_raw.py", &["127.0.0.1", &hub.port(), calling, "RENKEI", path]);
                assert!(text(&output).contains("\"status\": 0"), "private store failed: {}", text(&output));
                continue;
            }
            let proposal = match file.transfer_syntax.as_str() {
                "1.2.840.10008.1.2.5" => "-xr",
                "1.2.840.10008.1.2.1.99" => "-xd",
                "1.2.840.10008.1.2.2" => "-xb",
                "1.2.840.10008.1.2" => "-xi",
                _ => "-xe",
            };
            let output =
                dcmtk("storescu", &["-R", proposal, "-aet", calling, "-aec", "RENKEI", "127.0.0.1", &hub.port(), path]);
            assert!(output.status.success(), "storescu failed for {path}: {}", text(&output));
        }
    }
}

impl Fixture {
    /// Stores one facility's corpus files exactly as they are on disk, with pynetdicom.
    pub fn store_raw(&self, hub: &Hub, facility: &str, calling: &str) {
        let files: Vec<String> = self.files(facility).iter().map(|f| f.path.display().to_string()).collect();
        let mut args = vec!["127.0.0.1".to_owned(), hub.port(), calling.to_owned(), "RENKEI".to_owned()];
        args.extend(files);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = python("send_raw.py", &refs);
        let statuses = text(&output).lines().filter(|l| l.contains("\"status\": 0")).count();
        assert_eq!(statuses, self.files(facility).len(), "{}", text(&output));
    }
}

/// The dataset part of a Part-10 file: what the archive must keep byte for byte.
pub fn dataset_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("corpus file");
    let (offset, _) = renkei_service::read_part10_header(path).expect("readable").expect("DICOM");
    bytes[offset as usize..].to_vec()
}

/// The Pixel Data value of a Part-10 file.
pub fn pixel_data(path: &std::path::Path) -> Vec<u8> {
    let dataset = dataset_bytes(path);
    let (_, syntax) = renkei_service::read_part10_header(path).expect("readable").expect("DICOM");
    let syntax = renkei_dicom::Syntax::from_uid(syntax.as_str()).expect("standard syntax");
    let elements = renkei_dicom::walk::walk_bytes(&dataset, syntax, &|t| t == 0x7FE0_0010, u32::MAX).expect("walks");
    elements.into_iter().next().expect("pixel data").value
}

/// Every blob the archive holds.
pub fn blobs(data_dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(data_dir.join("blobs")).expect("blobs dir") {
        for blob in std::fs::read_dir(shard.expect("entry").path()).expect("shard") {
            out.push(std::fs::read(blob.expect("entry").path()).expect("blob"));
        }
    }
    out
}

/// DCMTK arguments for a query/retrieve request: information model, AE titles, `-k` keys.
fn query_args<'a>(port: &'a str, root: &'a str, calling: &'a str, extra: &[&'a str], keys: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![root, "-aet", calling, "-aec", "RENKEI"];
    args.extend_from_slice(extra);
    for key in keys {
        args.push("-k");
        args.push(key);
    }
    args.extend(["127.0.0.1", port]);
    args
}

/// findscu with `root` ("-S" Study Root, "-P" Patient Root) and the given keys.
pub fn findscu(hub: &Hub, root: &str, calling: &str, keys: &[&str]) -> Output {
    let port = hub.port();
    dcmtk("findscu", &query_args(&port, root, calling, &[], keys))
}

/// movescu (Study Root) to `destination`.
pub fn movescu(hub: &Hub, calling: &str, destination: &str, keys: &[&str]) -> Output {
    let port = hub.port();
    dcmtk("movescu", &query_args(&port, "-S", calling, &["-aem", destination], keys))
}

/// getscu (Study Root), writing what it receives to `out`.
pub fn getscu(hub: &Hub, calling: &str, out: &Path, keys: &[&str]) -> Output {
    let port = hub.port();
    let out = out.to_str().expect("utf-8 path");
    dcmtk("getscu", &query_args(&port, "-S", calling, &["-od", out], keys))
}

/// How many instances `calling`'s facility holds, by C-FIND at IMAGE level.
pub fn image_count(hub: &Hub, calling: &str) -> usize {
    find_results(&findscu(hub, "-S", calling, &["QueryRetrieveLevel=IMAGE", "SOPInstanceUID"]))
}

/// Number of "Find Response" results with pending status in findscu output.
pub fn find_results(output: &Output) -> usize {
    text(output).lines().filter(|l| l.contains("Find Response:") && l.contains("(Pending)")).count()
}

/// Runs `tests/console/SCRIPT` in Node against `hub` (`node SCRIPT BASE_URL TOKEN SHOTS
/// ARGS…`), expects it to print `done`, and checks that each of `shots` was taken (and copies
/// them to `RENKEI_KEEP_SCREENSHOTS`, if set, for a person to look at).
pub fn run_console_script(
    fixture: &Fixture,
    hub: &Hub,
    script: &str,
    token: &str,
    args: &[&str],
    done: &str,
    shots: &[&str],
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console").join(script);
    let dir = fixture.root.path().join("screenshots");
    std::fs::create_dir_all(&dir).expect("dir");
    let output = Command::new("node")
        .arg(&script)
        .arg(format!("http://{}", hub.http))
        .arg(token)
        .arg(&dir)
        .args(args)
        .output()
        .expect("node runs");
    assert!(output.status.success() && text(&output).contains(done), "{}", text(&output));
    for shot in shots {
        assert!(dir.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "{shot} was taken");
        if let Some(keep) = std::env::var_os("RENKEI_KEEP_SCREENSHOTS") {
            let _ = std::fs::copy(dir.join(shot), Path::new(&keep).join(shot));
        }
    }
}
