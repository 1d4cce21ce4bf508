//! Typed configuration, layered: defaults, then the TOML file, then `RENKEI_*` environment
//! variables, then command-line flags. [`Config::load`] is a pure function of those inputs.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Renkei's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// The hot tier in a bucket instead of the data directory (nodes that share no volume).
    pub hot: BucketConfig,
    /// The cold tier.
    pub cold: BucketConfig,
    pub recall: RecallConfig,
    pub lifecycle: LifecycleConfig,
    pub mpi: MpiConfig,
    pub dose: DoseConfig,
}

/// Radiation dose management (線量管理).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DoseConfig {
    /// How often `serve` reads newly stored dose objects, in milliseconds (0: only
    /// `renkei dose extract`).
    pub extract_every_ms: u64,
    /// How long a stored object waits before it is read, in seconds: a CT study arriving
    /// slice by slice is then read a few times rather than once per slice.
    pub settle_seconds: u64,
    /// While this node has indexed an object within this many milliseconds, the extractor
    /// waits, so that it never slows a modality's C-STORE (0: read alongside ingest)…
    pub ingest_quiet_ms: u64,
    /// …but for no longer than this many seconds.
    pub max_wait_seconds: u64,
}

impl Default for DoseConfig {
    fn default() -> Self {
        Self { extract_every_ms: 1000, settle_seconds: 5, ingest_quiet_ms: 1000, max_wait_seconds: 60 }
    }
}

impl DoseConfig {
    pub fn pace(&self) -> renkei_service::ExtractorPace {
        renkei_service::ExtractorPace {
            settle: std::time::Duration::from_secs(self.settle_seconds),
            quiet: std::time::Duration::from_millis(self.ingest_quiet_ms),
            max_wait: std::time::Duration::from_secs(self.max_wait_seconds),
        }
    }
}

/// The master patient index (名寄せ).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MpiConfig {
    /// How often `serve` looks for new or changed patients to match, in milliseconds (0:
    /// only `renkei mpi match`).
    pub match_every_ms: u64,
    /// Match probability from which two records are linked automatically (absent: the
    /// model's, 0.99).
    pub auto_link: Option<f64>,
    /// Match probability from which a pair goes to the review queue (absent: the model's, 0.8).
    pub review: Option<f64>,
}

impl Default for MpiConfig {
    fn default() -> Self {
        Self { match_every_ms: 1000, auto_link: None, review: None }
    }
}

impl MpiConfig {
    /// The configured thresholds, if any; one given alone keeps the default for the other.
    pub fn thresholds(&self) -> anyhow::Result<Option<renkei_matching::model::Thresholds>> {
        if self.auto_link.is_none() && self.review.is_none() {
            return Ok(None);
        }
        let defaults = renkei_matching::model::Thresholds::default();
        let thresholds = renkei_service::thresholds(
            self.auto_link.unwrap_or(defaults.auto_link),
            self.review.unwrap_or(defaults.review),
        )?;
        Ok(Some(thresholds))
    }
}

/// An S3-compatible bucket. Without `endpoint` and `bucket` there is none. Each secret can
/// be given inline or as a file (a mounted secret), never both.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BucketConfig {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

impl Default for BucketConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: None,
            region: "us-east-1".into(),
            access_key_id: None,
            access_key_id_file: None,
            secret_access_key: None,
            secret_access_key_file: None,
        }
    }
}

/// Blobs brought back from buckets to local disk to be read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecallConfig {
    /// Disk kept for recalled objects, in MiB; least recently used go first.
    pub cache_mib: u64,
    /// When a new study arrives, recall its patient's cold priors ahead of reading.
    pub prefetch_priors: bool,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self { cache_mib: 10 * 1024, prefetch_priors: true }
    }
}

/// Which studies go cold, and how often the mover runs in `serve`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Studies dated more than this many years ago go cold (0: never by age).
    pub cold_after_years: u32,
    /// Studies not retrieved for this many days go cold too (absent: no such rule).
    pub cold_after_idle_days: Option<u32>,
    /// Minutes between background runs of the mover in `serve` (0: only `renkei lifecycle run`).
    pub interval_minutes: u64,
    /// Per-facility exceptions, by facility id.
    pub facilities: std::collections::BTreeMap<String, FacilityLifecycle>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityLifecycle {
    pub cold_after_years: Option<u32>,
    pub cold_after_idle_days: Option<u32>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self { cold_after_years: 3, cold_after_idle_days: None, interval_minutes: 60, facilities: Default::default() }
    }
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
            hot: BucketConfig::default(),
            cold: BucketConfig::default(),
            recall: RecallConfig::default(),
            lifecycle: LifecycleConfig::default(),
            mpi: MpiConfig::default(),
            dose: DoseConfig::default(),
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
        config.hot.apply_env("RENKEI_HOT_", env);
        config.cold.apply_env("RENKEI_COLD_", env);
        if let Some(v) = &flags.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &flags.database_url {
            config.database.url = Some(v.clone());
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

/// A secret given inline or as a file's content (trimmed).
fn secret(name: &str, inline: &Option<String>, file: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("set {name} or {name}_file, not both"),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => Ok(Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {name} from {}", path.display()))?
                .trim()
                .to_owned(),
        )),
        (None, None) => Ok(None),
    }
}

impl BucketConfig {
    /// Takes `{prefix}ENDPOINT`, `BUCKET`, `REGION`, `ACCESS_KEY_ID(_FILE)` and
    /// `SECRET_ACCESS_KEY(_FILE)` from the environment.
    fn apply_env(&mut self, prefix: &str, env: &HashMap<String, String>) {
        let get = |name: &str| env.get(&format!("{prefix}{name}")).cloned();
        for (name, slot) in [
            ("ENDPOINT", &mut self.endpoint),
            ("BUCKET", &mut self.bucket),
            ("ACCESS_KEY_ID", &mut self.access_key_id),
            ("SECRET_ACCESS_KEY", &mut self.secret_access_key),
        ] {
            if let Some(v) = get(name) {
                *slot = Some(v);
            }
        }
        for (name, slot) in [
            ("ACCESS_KEY_ID_FILE", &mut self.access_key_id_file),
            ("SECRET_ACCESS_KEY_FILE", &mut self.secret_access_key_file),
        ] {
            if let Some(v) = get(name) {
                *slot = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = get("REGION") {
            self.region = v;
        }
    }

    /// Whether a bucket is configured at all.
    pub fn is_set(&self) -> bool {
        self.endpoint.is_some() || self.bucket.is_some()
    }

    /// The bucket's settings, secrets read from their files; `None` without a bucket.
    /// `tier` names the section in messages.
    pub fn settings(&self, tier: &str) -> anyhow::Result<Option<renkei_blob::S3Settings>> {
        let (endpoint, bucket) = match (&self.endpoint, &self.bucket) {
            (None, None) => return Ok(None),
            (Some(endpoint), Some(bucket)) => (endpoint.clone(), bucket.clone()),
            _ => bail!("a {tier} bucket needs both {tier}.endpoint and {tier}.bucket"),
        };
        let access_key_id = secret(&format!("{tier}.access_key_id"), &self.access_key_id, &self.access_key_id_file)?;
        let secret_access_key =
            secret(&format!("{tier}.secret_access_key"), &self.secret_access_key, &self.secret_access_key_file)?;
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key) else {
            bail!("a {tier} bucket needs {tier}.access_key_id and {tier}.secret_access_key (or their _file forms)");
        };
        Ok(Some(renkei_blob::S3Settings {
            endpoint,
            bucket,
            region: self.region.clone(),
            access_key_id,
            secret_access_key,
        }))
    }
}

impl LifecycleConfig {
    /// The policy the mover applies.
    pub fn policy(&self) -> renkei_service::LifecyclePolicy {
        let years = |years: u32| (years > 0).then_some(years);
        let default = renkei_service::FacilityPolicy {
            cold_after_years: years(self.cold_after_years),
            cold_after_idle_days: self.cold_after_idle_days,
        };
        let facilities = self
            .facilities
            .iter()
            .map(|(id, f)| {
                let policy = renkei_service::FacilityPolicy {
                    cold_after_years: f.cold_after_years.map_or(default.cold_after_years, years),
                    cold_after_idle_days: f.cold_after_idle_days.or(default.cold_after_idle_days),
                };
                (id.clone(), policy)
            })
            .collect();
        renkei_service::LifecyclePolicy { default, facilities }
    }
}

impl DatabaseConfig {
    /// The PostgreSQL URL, if one is configured, read from `url_file` when given there.
    pub fn postgres_url(&self) -> anyhow::Result<Option<String>> {
        let Some(url) = secret("database.url", &self.url, &self.url_file)? else { return Ok(None) };
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
    fn the_cold_tier_reads_its_secrets_from_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("s3-secret");
        std::fs::write(&secret, "very-secret\n").expect("write secret");
        let file = format!(
            "[cold]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"cold\"\naccess_key_id = \"renkei\"\n\
             secret_access_key_file = \"{}\"\n",
            secret.display()
        );
        let env = HashMap::from([("RENKEI_COLD_REGION".to_owned(), "ap-northeast-1".to_owned())]);
        let config = Config::load(Some(&file), &env, &Overrides::default()).expect("loads");
        let settings = config.cold.settings("cold").expect("settings").expect("a cold tier");
        assert_eq!(settings.secret_access_key, "very-secret");
        assert_eq!(settings.region, "ap-northeast-1");
        assert_eq!(Config::default().cold.settings("cold").expect("none"), None);
        assert_eq!(config.hot.settings("hot").expect("none"), None, "the hot tier stays on disk");
        let half = BucketConfig { endpoint: Some("http://x".into()), ..Default::default() };
        assert!(half.settings("cold").is_err());
        let both =
            BucketConfig { secret_access_key: Some("a".into()), secret_access_key_file: Some(secret), ..config.cold };
        assert!(both.settings("cold").is_err());
        let env = HashMap::from([
            ("RENKEI_HOT_ENDPOINT".to_owned(), "http://127.0.0.1:9000".to_owned()),
            ("RENKEI_HOT_BUCKET".to_owned(), "hot".to_owned()),
            ("RENKEI_HOT_ACCESS_KEY_ID".to_owned(), "renkei".to_owned()),
            ("RENKEI_HOT_SECRET_ACCESS_KEY".to_owned(), "s".to_owned()),
        ]);
        let hot = Config::load(None, &env, &Overrides::default()).expect("loads").hot;
        assert_eq!(hot.settings("hot").expect("settings").expect("a hot bucket").bucket, "hot");
    }

    #[test]
    fn lifecycle_policy_defaults_to_three_years_with_facility_exceptions() {
        let file = "[lifecycle]\ncold_after_idle_days = 400\n[lifecycle.facilities.east]\ncold_after_years = 0\n\
                    [lifecycle.facilities.west]\ncold_after_years = 5\n";
        let policy =
            Config::load(Some(file), &HashMap::new(), &Overrides::default()).expect("loads").lifecycle.policy();
        assert_eq!(policy.default.cold_after_years, Some(3));
        assert_eq!(policy.default.cold_after_idle_days, Some(400));
        let east = policy.of(&renkei_domain::FacilityId::new("east").expect("id"));
        assert_eq!((east.cold_after_years, east.cold_after_idle_days), (None, Some(400)));
        let west = policy.of(&renkei_domain::FacilityId::new("west").expect("id"));
        assert_eq!(west.cold_after_years, Some(5));
    }

    #[test]
    fn unknown_keys_and_bad_ae_titles_are_refused() {
        assert!(Config::load(Some("colour = \"red\""), &HashMap::new(), &Overrides::default()).is_err());
        let flags = Overrides { ae_title: Some("WAY_TOO_LONG_AE_TITLE".into()), ..Default::default() };
        assert!(Config::load(None, &HashMap::new(), &flags).is_err());
    }
}
