//! A throwaway PostgreSQL cluster for tests and benchmarks, from Debian's binaries
//! (feature `cluster`).
//!
//! [`Cluster::start`] runs `initdb` into a temporary directory and starts the server on a
//! Unix socket inside it (no TCP port at all, so nothing is shared between tests). Dropping
//! the cluster stops the server and removes the directory. As root, the server runs as the
//! `postgres` user, since PostgreSQL refuses to run as root.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running, private PostgreSQL server.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    as_postgres: bool,
    // Removed last, after the server has stopped.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Initialises and starts a cluster, tuned for speed over durability (tests only).
    pub fn start() -> io::Result<Cluster> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new().prefix("renkei-pg-").tempdir()?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir)?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).status()?;
            if !status.success() {
                return Err(io::Error::other(format!("cannot hand {} to the postgres user", dir.path().display())));
            }
        }
        let cluster = Cluster { bin, data, socket_dir, as_postgres, _dir: dir };
        cluster.run(
            "initdb",
            &[
                "-D",
                path(&cluster.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            cluster.socket_dir.display()
        );
        let log = cluster.data.join("server.log");
        cluster.run("pg_ctl", &["-D", path(&cluster.data), "-l", path(&log), "-o", &options, "-w", "start"])?;
        Ok(cluster)
    }

    /// The connection URL of the `postgres` database, as superuser, over the socket.
    pub fn url(&self) -> String {
        format!("postgres://postgres@localhost/postgres?host={}", self.socket_dir.display())
    }

    /// The URL of a new, empty database in this cluster.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let socket = path(&self.socket_dir);
        self.run("createdb", &["-h", socket, "-U", "postgres", name])?;
        Ok(format!("postgres://postgres@localhost/{name}?host={}", self.socket_dir.display()))
    }

    fn run(&self, tool: &str, args: &[&str]) -> io::Result<()> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).stdin(Stdio::null()).output()?;
        if !output.status.success() {
            let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            return Err(io::Error::other(format!("{tool} failed: {out}{err}")));
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.clone();
        if let Err(error) = self.run("pg_ctl", &["-D", path(&data), "-m", "immediate", "-w", "stop"]) {
            eprintln!("cannot stop the test PostgreSQL cluster: {error}");
        }
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`), or those in
/// `RENKEI_PG_BIN`.
fn binaries() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RENKEI_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut newest: Option<(u32, PathBuf)> = None;
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| io::Error::other("PostgreSQL is not installed (apt-get install postgresql)"))?;
    for entry in installed {
        let entry = entry?;
        let Some(major) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let bin = entry.path().join("bin");
        if bin.join("initdb").exists() && newest.as_ref().is_none_or(|(m, _)| major > *m) {
            newest = Some((major, bin));
        }
    }
    newest
        .map(|(_, bin)| bin)
        .ok_or_else(|| io::Error::other("no PostgreSQL server binaries under /usr/lib/postgresql"))
}
