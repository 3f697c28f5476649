//! Encours: credit decisions for B2B trade credit.
//!
//! Layers, with one-way doors: `api -> service -> {domain, audit, store}`; `store` and
//! `audit` use `domain`; `domain` uses nobody.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod policy;
pub mod service;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};

use api::error::ApiError;
use api::observe::{Metrics, observe};
use auth::JwtKeys;
use config::Settings;
use policy::{Limits, PolicyEngine};
use service::committer::DecisionWriter;
use service::policies::{self, PolicyRegistry};
use service::shadow::ShadowFeed;
use store::Store;

/// What every request can reach. Built once per process and shared by the workers.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub keys: JwtKeys,
    pub metrics: Metrics,
    pub policies: Arc<PolicyRegistry>,
    pub decisions: DecisionWriter,
    /// Event batches waiting for the writer (group commit on SQLite).
    pub events: service::events::Intake,
    /// Hands committed decisions to this process's shadow runs.
    pub shadow: ShadowFeed,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        keys: JwtKeys,
        policies: Arc<PolicyRegistry>,
    ) -> Result<Self, String> {
        let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
        let ttl = chrono::Duration::seconds(
            i64::try_from(settings.reservation_ttl_secs).map_err(|e| e.to_string())?,
        );
        let shadow = ShadowFeed::start(store.clone(), Arc::clone(&policies))?;
        let decisions =
            DecisionWriter::start(store.clone(), Arc::clone(&policies), ttl, shadow.clone())?;
        let events = service::events::Intake::new(std::time::Duration::from_millis(
            settings.events_group_wait_ms,
        ));
        Ok(Self {
            settings,
            store,
            keys,
            metrics,
            policies,
            decisions,
            events,
            shadow,
        })
    }
}

/// The one place that wires the application: used by `serve` and by the tests alike.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.settings.body_limit;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(limit))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::field("query", strip_query_prefix(&err.to_string())).into()
        }))
        .app_data(
            web::PathConfig::default()
                .error_handler(|err, _| ApiError::field("path", err.to_string()).into()),
        )
        .configure(api::configure)
        .default_service(web::to(api::not_found))
        .wrap(from_fn(observe))
}

fn strip_query_prefix(message: &str) -> String {
    message
        .strip_prefix("Query deserialize error: ")
        .unwrap_or(message)
        .to_owned()
}

/// Opens the database (migrating it) and resolves the token keys: everything `serve` needs
/// before it binds.
pub fn prepare(settings: Settings) -> Result<AppState, String> {
    let store = Store::connect(&settings).map_err(|e| e.to_string())?;
    let mut conn = store.get().map_err(|e| e.to_string())?;
    let applied = store::migrate(&mut conn).map_err(|e| e.to_string())?;
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "migrations applied");
    }
    let engine = PolicyEngine::new(Limits {
        compile: settings.compile_policies,
        ..Limits::default()
    });
    let seeded = policies::defaults::seed(&mut conn, &engine).map_err(|e| e.to_string())?;
    if !seeded.is_empty() {
        tracing::info!(policies = ?seeded, "default policies loaded as version 1");
    }
    drop(conn);
    let keys = JwtKeys::from_settings(&settings).map_err(|e| e.to_string())?;
    let registry = Arc::new(PolicyRegistry::new(engine));
    AppState::new(Arc::new(settings), store, keys, registry)
}
