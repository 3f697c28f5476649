//! The test harness: spawns `build_app` on a free port over a fresh database and talks to it
//! with a real HTTP client and tokens signed like any caller's.

use actix_web::{HttpServer, web};
use awc::http::StatusCode;
use awc::http::header::HeaderMap;
use diesel::{Connection, PgConnection, RunQueryDsl};
use encours::auth::{Claims, JwtKeys};
use encours::config::Settings;
use encours::store::Store;
use encours::{AppState, build_app, store};
use serde_json::Value;

pub const SECRET: &str = "test-secret-with-at-least-32-bytes!!";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A throwaway PostgreSQL database, dropped with the test.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// A new, empty PostgreSQL database: its URL and its guard; `None` (the test skipped, with a
/// note) when PostgreSQL is not configured outside CI.
fn fresh_postgres() -> Option<(String, PgDatabase)> {
    let Some(admin_url) = postgres_admin_url() else {
        eprintln!("skipped: ENCOURS_TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("encours_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(&admin_url).expect("admin connection");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .expect("create test database");
    Some((
        with_database(&admin_url, &name),
        PgDatabase { admin_url, name },
    ))
}

/// What [`database_before`] made: its file's directory or its PostgreSQL database, removed
/// when dropped.
pub struct Fresh {
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

/// A fresh database of one backend holding the schema of an earlier version: the migrations
/// up to, not including, the one whose name ends with `before` (a migration's own test fills
/// it as that version would have, then runs the rest with `store::migrate`). The database goes
/// with the guard.
pub fn database_before(backend: Backend, before: &str) -> Option<(store::AnyConnection, Fresh)> {
    use diesel::SqliteConnection;
    use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    fn up_to<C>(conn: &mut C, migrations: EmbeddedMigrations, before: &str)
    where
        C: MigrationHarness<C::Backend> + Connection,
    {
        for migration in conn.pending_migrations(migrations).unwrap() {
            if migration.name().to_string().ends_with(before) {
                return;
            }
            conn.run_migration(&*migration).unwrap();
        }
        panic!("no migration named …{before}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    match backend {
        Backend::Sqlite => {
            let path = dir.path().join("encours.db");
            let mut lite = SqliteConnection::establish(&path.display().to_string()).unwrap();
            diesel::sql_query("PRAGMA foreign_keys = ON")
                .execute(&mut lite)
                .unwrap();
            up_to(&mut lite, SQLITE, before);
            Some((
                store::AnyConnection::Sqlite(lite),
                Fresh {
                    _dir: dir,
                    _pg: None,
                },
            ))
        }
        Backend::Postgres => {
            let (url, db) = fresh_postgres()?;
            let mut pg = PgConnection::establish(&url).unwrap();
            up_to(&mut pg, POSTGRES, before);
            let guard = Fresh {
                _dir: dir,
                _pg: Some(db),
            };
            Some((store::AnyConnection::Postgres(pg), guard))
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: awc::Client,
    pub state: web::Data<AppState>,
    signer: JwtKeys,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

/// One HTTP answer, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// Asserts a problem+json answer with this status and code, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            ct,
            Some("application/problem+json"),
            "content type; body: {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "code; body: {}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "detail; body: {}",
            self.text
        );
        &self.body
    }

    /// The `field`s named in a validation problem's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("ENCOURS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but ENCOURS_TEST_POSTGRES_URL is not set: the PostgreSQL run is mandatory in CI"
            )
        }
        _ => None,
    }
}

/// Replaces the database name of a `postgres://…/db?params` URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

impl TestApp {
    /// The app on a fresh database; `None` when PostgreSQL is asked for but not configured
    /// outside CI (the test is then skipped with a note).
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A second server process on this app's database, as another `encours serve` on the same
    /// PostgreSQL would be (`tweak` applies to its settings, the database stays this one's).
    pub async fn another_process(&self, tweak: impl FnOnce(&mut Settings)) -> Option<Self> {
        let url = self.state.settings.database_url.clone();
        Self::spawn_with(Backend::Postgres, |s| {
            tweak(s);
            s.database_url = url;
        })
        .await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("encours.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, db) = fresh_postgres()?;
                (url, Some(db))
            }
        };
        let mut settings = Settings {
            database_url,
            jwt_secret: Some(SECRET.into()),
            pool_size: 4,
            ..Settings::default()
        };
        tweak(&mut settings);
        settings.validate().expect("valid test settings");
        let signer = JwtKeys::from_settings(&Settings {
            jwt_public_key: None,
            jwt_secret: Some(SECRET.into()),
            ..settings.clone()
        })
        .expect("signer");
        let state = tokio::task::spawn_blocking(move || encours::prepare(settings))
            .await
            .expect("join")
            .expect("app prepares");
        let state = web::Data::new(state);
        let app_state = state.clone();
        let server = HttpServer::new(move || build_app(app_state.clone()))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind");
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        Some(Self {
            base: format!("http://{addr}"),
            http: awc::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
            state,
            signer,
            _dir: dir,
            _pg: pg,
        })
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// A valid HS256 token for `sub` with these space-separated scopes.
    pub fn token_for(&self, sub: &str, scopes: &str) -> String {
        self.sign(Claims {
            sub: sub.into(),
            exp: chrono::Utc::now().timestamp() + 600,
            nbf: None,
            iat: None,
            iss: self.state.settings.jwt_issuer.clone(),
            aud: self.state.settings.jwt_audience.clone().map(Value::String),
            scope: scopes.into(),
        })
    }

    pub fn token(&self, scopes: &str) -> String {
        self.token_for("tester", scopes)
    }

    pub fn sign(&self, claims: Claims) -> String {
        self.signer.mint(&claims).expect("mint")
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut res = match body {
            Some((content_type, bytes)) => req
                .insert_header(("Content-Type", content_type))
                .send_body(bytes)
                .await
                .expect("request"),
            None => req.send().await.expect("request"),
        };
        let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status: res.status(),
            headers: res.headers().clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None).await
    }

    /// A GET whose body the caller reads as a stream, allowed minutes (for exports).
    pub async fn streaming_get(
        &self,
        path: &str,
        token: &str,
    ) -> awc::ClientResponse<
        impl futures_util::Stream<Item = Result<web::Bytes, awc::error::PayloadError>> + Unpin,
    > {
        awc::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .finish()
            .get(format!("{}{}", self.base, path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("request")
    }

    pub async fn put_json(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send_json("PUT", path, token, body).await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send_json("POST", path, token, body).await
    }

    async fn send_json(&self, method: &str, path: &str, token: &str, body: &Value) -> Answer {
        self.call(
            method,
            path,
            Some(token),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    pub async fn put_raw(&self, path: &str, token: &str, raw: &str) -> Answer {
        self.call(
            "PUT",
            path,
            Some(token),
            Some(("application/json", raw.as_bytes().to_vec())),
        )
        .await
    }

    /// The audit chain's head (sequence, hash) — tests count from it, since the shipped
    /// policies are recorded when the database is created.
    pub async fn audit_head(&self) -> (i64, String) {
        let verify = self
            .get("/v1/audit/verify", &self.token("audit:read"))
            .await;
        assert_eq!(verify.body["ok"], true, "{}", verify.text);
        (
            verify.body["records"].as_i64().expect("records"),
            verify.body["head"]["hash"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// Runs SQL straight against the test database (to tamper, or to look behind the API).
    pub async fn sql(&self, statement: &str) -> Result<usize, String> {
        let statement = statement.to_owned();
        self.store()
            .run(move |conn| {
                diesel::sql_query(statement)
                    .execute(conn)
                    .map_err(store::StoreError::Query)
            })
            .await
            .map_err(|e| e.to_string())
    }
}

pub fn client_body(currency: &str, limit: &str) -> Value {
    serde_json::json!({
        "name": "Boulangeries Martin SAS",
        "registration_number": "552 100 554",
        "country": "FR",
        "sector": "C10.71",
        "currency": currency,
        "credit_limit": limit,
    })
}

/// Every operation of the served contract: (METHOD, a concrete path, the operation object),
/// path parameters filled with plausible values.
pub fn operations() -> Vec<(String, String, Value)> {
    let doc: Value =
        serde_json::from_str(&encours::api::openapi::document_json()).expect("the contract");
    let mut out = Vec::new();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let path = template
                .replace("{client_id}", "C-1")
                .replace("{decision_id}", "01a22e6e-6ed9-72c1-8386-30c7b8e63a45")
                .replace("{sequence}", "1")
                .replace("{name}", "deposit")
                .replace("{version}", "1");
            assert!(!path.contains('{'), "unfilled parameter in {template}");
            out.push((method.to_uppercase(), path, op.clone()));
        }
    }
    out
}

/// Checks `property` on `cases` values of the strategy `make` builds, against the app's
/// store, in a blocking task: each case gets a pooled connection and its number (for ids that
/// stay unique across cases). Panics with proptest's report, the smallest failing input.
pub async fn check_on_store<S: proptest::strategy::Strategy>(
    app: &TestApp,
    cases: u32,
    make: impl FnOnce() -> S + Send + 'static,
    property: impl Fn(
        &AppState,
        &mut store::AnyConnection,
        usize,
        S::Value,
    ) -> proptest::test_runner::TestCaseResult
    + Send
    + 'static,
) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let state = app.state.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let case = AtomicUsize::new(0);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&make(), |value| {
                let case = case.fetch_add(1, Ordering::SeqCst);
                let mut conn = state
                    .store
                    .get()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                property(&state, &mut conn, case, value)
            })
            .map_err(|e| e.to_string())
    })
    .await
    .expect("join");
    if let Err(e) = checked {
        panic!("{e}");
    }
}
