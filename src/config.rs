//! Settings: defaults < `encours.toml` (or `ENCOURS_CONFIG`) < `ENCOURS_*` environment,
//! validated once at start so a bad setting stops the process with its name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How SQLite syncs to disk. With WAL: `normal` survives a process crash but may lose the
/// last commits on power loss; `full` (the default) and `extra` survive power loss too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Normal,
    Full,
    Extra,
}

impl SqliteSynchronous {
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Every setting of the service. Passed around as a value (`Arc<Settings>`), never a global.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://path`, a bare path, or `postgres://…`.
    pub database_url: String,
    pub bind: String,
    /// HTTP worker threads; 0 = one per core but one (at least one).
    pub workers: usize,
    /// Database connections in the pool.
    pub pool_size: u32,
    /// How long a request waits for a pooled connection before a 503.
    pub pool_timeout_ms: u64,
    pub jwt_secret: Option<String>,
    /// PEM public key (RS256 or ES256), inline or as a path to a file.
    pub jwt_public_key: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub four_eyes: bool,
    pub log: LogFormat,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    pub sqlite_synchronous: SqliteSynchronous,
    pub sqlite_busy_timeout_ms: u32,
    /// How long an approved decision holds its credit before it lapses uninvoiced.
    pub reservation_ttl_secs: u64,
    /// Seconds between scheduled review passes (clients whose invoices crossed 30/60/90 days
    /// past due or whose cover ended); 0 turns the pass off.
    pub review_interval_secs: u64,
    /// On SQLite, how long (from a group's start) the event writer waits for the senders of its
    /// last group to send again, so their batches join one transaction and one review a client;
    /// 0 never waits.
    pub events_group_wait_ms: u64,
    /// Run policies compiled to closures (the interpreter where they cannot
    /// be); `false` always interprets. Same results either way: a switch for
    /// an incident, not a tuning knob.
    pub compile_policies: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://encours.db".into(),
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            pool_size: 8,
            pool_timeout_ms: 5_000,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            four_eyes: true,
            log: LogFormat::Pretty,
            body_limit: 1024 * 1024,
            sqlite_synchronous: SqliteSynchronous::Full,
            sqlite_busy_timeout_ms: 5_000,
            reservation_ttl_secs: 7 * 24 * 3600,
            review_interval_secs: 600,
            events_group_wait_ms: 20,
            compile_policies: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

/// The two backends, chosen by the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseTarget {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(format!(
                "`{}` is neither sqlite://PATH, a file path, nor postgres://…",
                redact_url(url)
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Settings {
    /// Loads and validates the settings from the file and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("ENCOURS_CONFIG").unwrap_or_else(|_| "encours.toml".into());
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(&file))
            .merge(Env::prefixed("ENCOURS_").ignore(&["CONFIG", "TEST_POSTGRES_URL"]))
            .extract()
            .map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        DatabaseTarget::parse(&self.database_url).map_err(|m| invalid("database_url", m))?;
        self.bind
            .parse::<SocketAddr>()
            .map_err(|e| invalid("bind", format!("`{}`: {e} (expected HOST:PORT)", self.bind)))?;
        if self.workers > 256 {
            return Err(invalid(
                "workers",
                "must be 0 (one per core but one) to 256",
            ));
        }
        if !(1..=512).contains(&self.pool_size) {
            return Err(invalid("pool_size", "must be 1 to 512"));
        }
        if self.pool_timeout_ms == 0 {
            return Err(invalid("pool_timeout_ms", "must be positive"));
        }
        if self.jwt_secret.is_some() && self.jwt_public_key.is_some() {
            return Err(invalid(
                "jwt_secret",
                "set either jwt_secret (HS256) or jwt_public_key (RS256/ES256), not both",
            ));
        }
        if let Some(secret) = &self.jwt_secret
            && secret.len() < 32
        {
            return Err(invalid("jwt_secret", "must be at least 32 bytes"));
        }
        if self.events_group_wait_ms > 1_000 {
            return Err(invalid("events_group_wait_ms", "must be 0 to 1000"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.body_limit) {
            return Err(invalid("body_limit", "must be 1 KiB to 64 MiB"));
        }
        if !(60..=366 * 24 * 3600).contains(&self.reservation_ttl_secs) {
            return Err(invalid(
                "reservation_ttl_secs",
                "must be 60 seconds to 366 days",
            ));
        }
        if self.review_interval_secs > 86_400 {
            return Err(invalid(
                "review_interval_secs",
                "must be 0 (off) to 86400 (a day)",
            ));
        }
        Ok(())
    }

    pub fn database(&self) -> DatabaseTarget {
        // Validated at load; a hand-built value falls back to its path reading.
        DatabaseTarget::parse(&self.database_url)
            .unwrap_or_else(|_| DatabaseTarget::Sqlite(PathBuf::from(&self.database_url)))
    }

    /// Where a generated signing secret is kept: next to the SQLite file, or in the working
    /// directory for PostgreSQL.
    pub fn secret_file(&self) -> PathBuf {
        match self.database() {
            DatabaseTarget::Sqlite(path) => {
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(".jwt-secret");
                path.with_file_name(name)
            }
            DatabaseTarget::Postgres(_) => Path::new("encours.jwt-secret").to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_targets() {
        assert_eq!(
            DatabaseTarget::parse("sqlite://a/b.db").unwrap(),
            DatabaseTarget::Sqlite("a/b.db".into())
        );
        assert_eq!(
            DatabaseTarget::parse("b.db").unwrap(),
            DatabaseTarget::Sqlite("b.db".into())
        );
        assert!(matches!(
            DatabaseTarget::parse("postgres://u@h/db").unwrap(),
            DatabaseTarget::Postgres(_)
        ));
        assert!(DatabaseTarget::parse("mysql://x").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn validation_names_the_setting() {
        let s = Settings {
            bind: "nowhere".into(),
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("bind"));
        let s = Settings {
            jwt_secret: Some("short".into()),
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("jwt_secret"));
        let s = Settings {
            events_group_wait_ms: 1_001,
            ..Settings::default()
        };
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("events_group_wait_ms")
        );
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn secret_file_sits_next_to_the_database() {
        let s = Settings {
            database_url: "sqlite:///var/lib/enc/x.db".into(),
            ..Settings::default()
        };
        assert_eq!(
            s.secret_file(),
            PathBuf::from("/var/lib/enc/x.db.jwt-secret")
        );
    }
}
