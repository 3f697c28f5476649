//! JWT keys: verifying bearer tokens (HS256 secret, or an RS256/ES256 public key) and minting
//! local HS256 tokens. With no key configured, a random secret is generated once and kept
//! next to the database with 0600 permissions; it is never logged.

mod verified;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// Every scope the API knows, in the order API.md lists them.
pub const SCOPES: &[&str] = &[
    "decisions:write",
    "decisions:read",
    "events:write",
    "clients:read",
    "clients:write",
    "policies:read",
    "policies:write",
    "policies:activate",
    "reviews:write",
    "audit:read",
];

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
}

impl Claims {
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == wanted)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("jwt_public_key: {0}")]
    PublicKey(String),
    #[error("JWT secret file {path}: {message}")]
    SecretFile { path: PathBuf, message: String },
    #[error(
        "minting needs the HS256 secret; with jwt_public_key set, tokens come from your identity provider"
    )]
    CannotMint,
    #[error("token: {0}")]
    Mint(String),
}

/// Where the signing secret came from, so `serve` can tell the operator without showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File { path: PathBuf, generated: bool },
}

/// Verifies (and, with a secret, mints) the service's tokens.
#[derive(Clone)]
pub struct JwtKeys {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    pub source: KeySource,
    /// Tokens these keys verified, shared by the clones (see `verified`).
    verified: Arc<verified::Verified>,
}

impl JwtKeys {
    /// Resolves the keys from the settings, generating the local secret if none is configured.
    pub fn from_settings(settings: &Settings) -> Result<Self, KeyError> {
        let (algorithm, decoding, encoding, source) = if let Some(pem) = &settings.jwt_public_key {
            let (alg, key) = public_key(pem)?;
            (alg, key, None, KeySource::Configured)
        } else {
            let (secret, source) = match &settings.jwt_secret {
                Some(s) => (s.clone(), KeySource::Configured),
                None => load_or_generate_secret(&settings.secret_file())?,
            };
            (
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
                Some(EncodingKey::from_secret(secret.as_bytes())),
                source,
            )
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &settings.jwt_issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &settings.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            decoding,
            encoding,
            validation,
            source,
            verified: Arc::default(),
        })
    }

    /// Checks signature, algorithm, expiry, not-before, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!("the token is longer than {MAX_TOKEN_BYTES} bytes"));
        }
        let digest = verified::digest(token);
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = self.verified.get(&digest, now, self.validation.leeway) {
            return Ok(claims);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| describe(&e))?;
        if data.claims.sub.trim().is_empty() {
            return Err("the token's `sub` is empty".into());
        }
        self.verified.remember(digest, &data.claims);
        Ok(data.claims)
    }

    /// Mints an HS256 token for local use (`encours token`, tests).
    pub fn mint(&self, claims: &Claims) -> Result<String, KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::CannotMint)?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| KeyError::Mint(e.to_string()))
    }
}

/// A short, safe reason for a refused token (never the token itself).
fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match err.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidIssuer => "the token's issuer is not accepted".into(),
        K::InvalidAudience => "the token's audience is not accepted".into(),
        K::InvalidAlgorithm => "the token's algorithm is not accepted".into(),
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::MissingRequiredClaim(c) => format!("the token lacks the `{c}` claim"),
        _ => "the token is malformed or uses an unsupported algorithm".into(),
    }
}

fn public_key(value: &str) -> Result<(Algorithm, DecodingKey), KeyError> {
    let pem = if value.trim_start().starts_with("-----BEGIN") {
        value.to_owned()
    } else {
        fs::read_to_string(value).map_err(|e| KeyError::PublicKey(format!("{value}: {e}")))?
    };
    if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((Algorithm::RS256, key));
    }
    DecodingKey::from_ec_pem(pem.as_bytes())
        .map(|key| (Algorithm::ES256, key))
        .map_err(|_| KeyError::PublicKey("not an RSA or EC (P-256) public key in PEM".into()))
}

fn load_or_generate_secret(path: &Path) -> Result<(String, KeySource), KeyError> {
    let fail = |message: String| KeyError::SecretFile {
        path: path.to_owned(),
        message,
    };
    match fs::read_to_string(path) {
        Ok(secret) if secret.trim().len() >= 32 => {
            return Ok((
                secret.trim().to_owned(),
                KeySource::File {
                    path: path.to_owned(),
                    generated: false,
                },
            ));
        }
        Ok(_) => {
            return Err(fail(
                "holds fewer than 32 bytes; delete it to regenerate".into(),
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e.to_string())),
        Err(_) => {}
    }
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| fail(e.to_string()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail(e.to_string()))?;
    Ok((
        secret,
        KeySource::File {
            path: path.to_owned(),
            generated: true,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims with only what every token must carry.
    pub(super) fn claims(sub: &str, scope: &str, exp: i64) -> Claims {
        Claims {
            sub: sub.into(),
            exp,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
            scope: scope.into(),
        }
    }

    fn in_a_minute() -> i64 {
        chrono::Utc::now().timestamp() + 60
    }

    fn settings(dir: &Path) -> Settings {
        Settings {
            database_url: dir.join("t.db").to_string_lossy().into_owned(),
            ..Settings::default()
        }
    }

    #[test]
    fn generates_the_secret_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let first = JwtKeys::from_settings(&settings(dir.path())).unwrap();
        let path = dir.path().join("t.db.jwt-secret");
        assert_eq!(
            first.source,
            KeySource::File {
                path: path.clone(),
                generated: true
            }
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = JwtKeys::from_settings(&settings(dir.path())).unwrap();
        assert!(matches!(
            second.source,
            KeySource::File {
                generated: false,
                ..
            }
        ));
        let token = first
            .mint(&claims("alice", "clients:read", in_a_minute()))
            .unwrap();
        assert_eq!(second.verify(&token).unwrap().sub, "alice");
    }

    #[test]
    fn a_token_verified_once_does_not_vouch_for_another_or_for_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = JwtKeys::from_settings(&settings(dir.path())).unwrap();
        let mint = |scope: &str| keys.mint(&claims("erp", scope, in_a_minute())).unwrap();
        let token = mint("decisions:write");
        for _ in 0..2 {
            assert_eq!(keys.verify(&token).unwrap().scope, "decisions:write");
        }
        // The same header and signature on other claims, and a changed signature: refused.
        let (_, signature) = token.rsplit_once('.').unwrap();
        let other = mint("audit:read");
        let (unsigned, _) = other.rsplit_once('.').unwrap();
        let forged = format!("{unsigned}.{signature}");
        assert!(keys.verify(&forged).is_err());
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert!(keys.verify(&tampered).is_err());
        // Other keys (another secret) never saw it, and refuse it.
        let elsewhere = tempfile::tempdir().unwrap();
        let other_keys = JwtKeys::from_settings(&settings(elsewhere.path())).unwrap();
        assert!(other_keys.verify(&token).is_err());
        assert!(keys.verify(&token).is_ok());
    }
}
