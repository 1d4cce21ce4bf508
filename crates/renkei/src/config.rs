//! Typed configuration, layered: defaults, then the TOML file, then `RENKEI_*` environment
//! variables, then command-line flags. [`Config::load`] is a pure function of those inputs.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Renkei's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the index (`index.sqlite`) and the blobs live.
    pub data_dir: PathBuf,
    /// HTTP listen address (health now; DICOMweb, FHIR and the console later).
    pub http_listen: String,
    /// DICOM (DIMSE) listen address.
    pub dicom_listen: String,
    /// This archive's AE title.
    pub ae_title: String,
    pub dicom: DicomConfig,
    pub database: DatabaseConfig,
}

/// The index database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://…` for a PostgreSQL index shared by several nodes. Absent: the embedded
    /// SQLite index in the data directory.
    pub url: Option<String>,
    /// A file holding the URL, for a URL that carries a password (a mounted secret).
    pub url_file: Option<PathBuf>,
    /// Connections each node keeps to PostgreSQL (default 16).
    pub max_connections: Option<u32>,
}

/// DIMSE tuning.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    /// Largest PDU accepted, in bytes; bounds the memory of each association.
    pub max_pdu_length: u32,
    /// Seconds an association may stay idle.
    pub idle_timeout_secs: u64,
    /// Seconds open associations get to finish at shutdown.
    pub drain_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("renkei-data"),
            http_listen: "127.0.0.1:8080".into(),
            dicom_listen: "127.0.0.1:11112".into(),
            ae_title: "RENKEI".into(),
            dicom: DicomConfig::default(),
            database: DatabaseConfig::default(),
        }
    }
}

impl Default for DicomConfig {
    fn default() -> Self {
        Self { max_pdu_length: 256 * 1024, idle_timeout_secs: 300, drain_timeout_secs: 30 }
    }
}

/// Values given as command-line flags; each one, if set, wins over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub http_listen: Option<String>,
    pub dicom_listen: Option<String>,
    pub ae_title: Option<String>,
    pub database_url: Option<String>,
}

impl Config {
    /// Builds the configuration from the config file's text (if any), the environment and
    /// the flags.
    pub fn load(file: Option<&str>, env: &HashMap<String, String>, flags: &Overrides) -> anyhow::Result<Config> {
        let mut config: Config = match file {
            Some(text) => toml::from_str(text).context("invalid config file")?,
            None => Config::default(),
        };
        if let Some(v) = env.get("RENKEI_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        for (name, slot) in [
            ("RENKEI_HTTP_LISTEN", &mut config.http_listen),
            ("RENKEI_DICOM_LISTEN", &mut config.dicom_listen),
            ("RENKEI_AE_TITLE", &mut config.ae_title),
        ] {
            if let Some(v) = env.get(name) {
                *slot = v.clone();
            }
        }
        if let Some(v) = env.get("RENKEI_DATABASE_URL") {
            config.database.url = Some(v.clone());
        }
        if let Some(v) = env.get("RENKEI_DATABASE_URL_FILE") {
            config.database.url_file = Some(PathBuf::from(v));
        }
        if let Some(v) = &flags.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &flags.database_url {
            config.database.url = Some(v.clone());
        }
        if config.database.url.is_some() && config.database.url_file.is_some() {
            bail!("set the database URL or a file holding it, not both");
        }
        for (flag, slot) in [
            (&flags.http_listen, &mut config.http_listen),
            (&flags.dicom_listen, &mut config.dicom_listen),
            (&flags.ae_title, &mut config.ae_title),
        ] {
            if let Some(v) = flag {
                *slot = v.clone();
            }
        }
        if renkei_domain::AeTitle::new(&config.ae_title).is_err() {
            bail!("ae_title {:?} is not a valid AE title", config.ae_title);
        }
        Ok(config)
    }
}

impl DatabaseConfig {
    /// The PostgreSQL URL, if one is configured, read from `url_file` when given there.
    pub fn postgres_url(&self) -> anyhow::Result<Option<String>> {
        let url = match (&self.url, &self.url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the database URL from {}", path.display()))?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            bail!("the database URL must be postgres://… (SQLite needs none: it lives in the data directory)");
        }
        Ok(Some(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_configuration_is_the_embedded_default() {
        let config = Config::load(None, &HashMap::new(), &Overrides::default()).expect("defaults load");
        assert_eq!(config, Config::default());
        assert_eq!(config.dicom_listen, "127.0.0.1:11112");
        assert_eq!(config.ae_title, "RENKEI");
    }

    #[test]
    fn layers_apply_in_order() {
        let file = "ae_title = \"FROMFILE\"\nhttp_listen = \"127.0.0.1:1\"\ndicom_listen = \"127.0.0.1:2\"\n[dicom]\nidle_timeout_secs = 5\n";
        let env = HashMap::from([
            ("RENKEI_HTTP_LISTEN".to_owned(), "127.0.0.1:3".to_owned()),
            ("RENKEI_AE_TITLE".to_owned(), "FROMENV".to_owned()),
        ]);
        let flags = Overrides { ae_title: Some("FROMFLAG".into()), ..Default::default() };
        let config = Config::load(Some(file), &env, &flags).expect("loads");
        assert_eq!(config.dicom_listen, "127.0.0.1:2");
        assert_eq!(config.http_listen, "127.0.0.1:3");
        assert_eq!(config.ae_title, "FROMFLAG");
        assert_eq!(config.dicom.idle_timeout_secs, 5);
    }

    #[test]
    fn the_database_url_comes_from_file_env_or_flag() {
        let file = "[database]\nurl = \"postgres://file/db\"\nmax_connections = 4\n";
        let config = Config::load(Some(file), &HashMap::new(), &Overrides::default()).expect("loads");
        assert_eq!(config.database.postgres_url().expect("url").as_deref(), Some("postgres://file/db"));
        assert_eq!(config.database.max_connections, Some(4));
        let env = HashMap::from([("RENKEI_DATABASE_URL".to_owned(), "postgres://env/db".to_owned())]);
        let flags = Overrides { database_url: Some("postgres://flag/db".into()), ..Default::default() };
        let config = Config::load(Some(file), &env, &Overrides::default()).expect("loads");
        assert_eq!(config.database.url.as_deref(), Some("postgres://env/db"));
        let config = Config::load(Some(file), &env, &flags).expect("loads");
        assert_eq!(config.database.url.as_deref(), Some("postgres://flag/db"));
        let sqlite = Config::load(None, &HashMap::new(), &Overrides::default()).expect("loads");
        assert_eq!(sqlite.database.postgres_url().expect("none"), None);
    }

    #[test]
    fn the_database_url_can_be_a_secret_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("database-url");
        std::fs::write(&secret, "postgres://renkei:s3cret@db/renkei\n").expect("write secret");
        let env = HashMap::from([("RENKEI_DATABASE_URL_FILE".to_owned(), secret.display().to_string())]);
        let config = Config::load(None, &env, &Overrides::default()).expect("loads");
        assert_eq!(
            config.database.postgres_url().expect("read").as_deref(),
            Some("postgres://renkei:s3cret@db/renkei")
        );
        let not_postgres = DatabaseConfig { url: Some("mysql://db".into()), ..Default::default() };
        assert!(not_postgres.postgres_url().is_err());
    }

    #[test]
    fn unknown_keys_and_bad_ae_titles_are_refused() {
        assert!(Config::load(Some("colour = \"red\""), &HashMap::new(), &Overrides::default()).is_err());
        let flags = Overrides { ae_title: Some("WAY_TOO_LONG_AE_TITLE".into()), ..Default::default() };
        assert!(Config::load(None, &HashMap::new(), &flags).is_err());
    }
}
