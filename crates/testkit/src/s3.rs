//! A real S3-compatible server on loopback for tests: `s3s-fs` (crates.io), which keeps
//! buckets as directories, so it can be killed and started again without losing what it
//! acknowledged, as a real object store would.
//!
//! `scripts/test` installs it into `~/.cache/renkei-tools/bin`; `RENKEI_S3S_FS` names
//! another binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

pub const ACCESS_KEY: &str = "renkei-test";
pub const SECRET_KEY: &str = "renkei-test-secret";
pub const BUCKET: &str = "renkei-cold";
pub const HOT_BUCKET: &str = "renkei-hot";

/// A running S3 server with two buckets, [`BUCKET`] (for the cold tier) and [`HOT_BUCKET`].
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server on an ephemeral loopback port with an empty bucket.
    pub fn start() -> anyhow::Result<S3Server> {
        let root = tempfile::Builder::new().prefix("renkei-s3-").tempdir()?;
        std::fs::create_dir(root.path().join(BUCKET))?;
        std::fs::create_dir(root.path().join(HOT_BUCKET))?;
        let (child, port) = spawn(root.path(), 0)?;
        Ok(S3Server { child: Some(child), port, root })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment variables that point a `renkei` process at [`BUCKET`] as its cold tier.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RENKEI_COLD_ENDPOINT", self.endpoint()),
            ("RENKEI_COLD_BUCKET", BUCKET.to_owned()),
            ("RENKEI_COLD_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("RENKEI_COLD_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    }

    /// Environment variables that put a `renkei` process's hot tier in [`HOT_BUCKET`].
    pub fn hot_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RENKEI_HOT_ENDPOINT", self.endpoint()),
            ("RENKEI_HOT_BUCKET", HOT_BUCKET.to_owned()),
            ("RENKEI_HOT_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("RENKEI_HOT_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    }

    /// The files the cold bucket holds (object data, not the server's own metadata).
    pub fn objects(&self) -> Vec<PathBuf> {
        self.objects_in(BUCKET)
    }

    /// The files a bucket holds.
    pub fn objects_in(&self, bucket: &str) -> Vec<PathBuf> {
        fn visit(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    visit(&path, out);
                } else if !path.to_string_lossy().contains(".upload") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        visit(&self.root.path().join(bucket).join("blobs"), &mut out);
        out
    }

    /// The bytes the bucket holds under `key`, read from the server's disk.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.path().join(BUCKET).join(key)).ok()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let (child, _) = spawn(self.root.path(), self.port)?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RENKEI_S3S_FS") {
        return PathBuf::from(path);
    }
    let cached = std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/renkei-tools/bin/s3s-fs"));
    cached.filter(|path| path.exists()).unwrap_or_else(|| PathBuf::from("s3s-fs"))
}

/// Starts `s3s-fs` and waits for the line that says where it listens.
fn spawn(root: &Path, port: u16) -> anyhow::Result<(Child, u16)> {
    let mut child = Command::new(binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start s3s-fs (scripts/test installs it)")?;
    // It logs to standard output.
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            bail!("s3s-fs exited before listening");
        };
        if let Some((_, address)) = line?.split_once("server is running at http://127.0.0.1:") {
            let digits: String = address.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().context("s3s-fs printed no port")?;
        }
    };
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, port))
}
