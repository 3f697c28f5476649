//! The outermost middleware: request ids, one structured log line per request, metrics, and
//! every error page actix makes by itself (404, 405, 413, …) rewritten as problem+json.

use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use prometheus::{
    Counter, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use tracing::Instrument;

use super::error::{PROBLEM_JSON, Problem, fallback_problem};
use crate::AppState;
use crate::service::policies::{StageRuns, stage_runs};
use crate::service::writer_stats::WriterCounts;
use crate::store::Store;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request, accepted from the caller when sane or generated.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn accept_request_id(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = accept_request_id(req.headers().get(REQUEST_ID));
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method);
    // Routing turns handler errors into responses; an `Err` here could only come from an
    // inner middleware, and there is none. (Cloning the request to answer it would break
    // routing, which needs the request uniquely.)
    let mut res = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !is_problem(&res) {
        let (code, detail) = fallback_problem(status);
        let allow = res.headers().get(header::ALLOW).cloned();
        res = res.into_response(Problem::new(status, code, detail.to_owned()).into_response());
        if let Some(allow) = allow {
            res.headers_mut().insert(header::ALLOW, allow);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = started.elapsed();
    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
        state
            .metrics
            .observe(&method, &route, status.as_u16(), elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            route = %route,
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    Ok(res)
}

fn is_problem(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// The service's Prometheus registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    /// Policy stages run, by `mode` (compiled, interpreted): the engine counts them itself
    /// (it knows nothing of Prometheus); each scrape adds what it counted since the last one.
    stages: IntCounterVec,
    stages_seen: Mutex<StageRuns>,
    /// The decision writer's batches, decisions and busy time, counted by the writer (as the
    /// stages are by the engine).
    decision_writer: WriterMetrics,
    /// The same of the event writer (SQLite's group commit): its transactions and the event
    /// batches they carried.
    event_writer: WriterMetrics,
}

/// A writer's counts as Prometheus counters (see `service::writer_stats`).
struct WriterMetrics {
    transactions: IntCounter,
    items: IntCounter,
    busy: Counter,
    seen: Mutex<WriterCounts>,
}

impl WriterMetrics {
    /// Counters named `<prefix>_<transactions>_total`, `<prefix>_<items>_total` and
    /// `<prefix>_busy_seconds_total`.
    fn new(
        registry: &Registry,
        prefix: &str,
        (transactions, transactions_help): (&str, &str),
        (items, items_help): (&str, &str),
    ) -> Result<Self, prometheus::Error> {
        let transactions =
            IntCounter::new(format!("{prefix}_{transactions}_total"), transactions_help)?;
        let items = IntCounter::new(format!("{prefix}_{items}_total"), items_help)?;
        let busy = Counter::new(
            format!("{prefix}_busy_seconds_total"),
            format!(
                "Wall-clock time the {} spent on transactions; its rate near 1 means it is the ceiling",
                prefix.replace('_', " ")
            ),
        )?;
        registry.register(Box::new(transactions.clone()))?;
        registry.register(Box::new(items.clone()))?;
        registry.register(Box::new(busy.clone()))?;
        Ok(Self {
            transactions,
            items,
            busy,
            seen: Mutex::new(WriterCounts::default()),
        })
    }

    /// Adds what the writer counted since the last scrape.
    fn count(&self, now: WriterCounts) {
        // A poisoned lock only means a scrape panicked mid-way: the figures are still whole.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.transactions
            .inc_by(now.transactions.saturating_sub(seen.transactions));
        self.items.inc_by(now.items.saturating_sub(seen.items));
        // Microseconds as integers until here, so that no rounding adds up.
        let micros = now.busy_micros.saturating_sub(seen.busy_micros);
        self.busy.inc_by(micros as f64 / 1e6);
        *seen = now;
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("encours".into()), None)?;
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            labels,
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP latency by route and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            labels,
        )?;
        let pool = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["state"],
        )?;
        let stages = IntCounterVec::new(
            Opts::new(
                "policy_stage_runs_total",
                "Policy stages run, compiled to closures or on rhai's interpreter",
            ),
            &["mode"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(stages.clone()))?;
        let decision_writer = WriterMetrics::new(
            &registry,
            "decision_writer",
            (
                "batches",
                "Transactions the decision writer committed (each carries every decision waiting)",
            ),
            (
                "decisions",
                "Decisions through the decision writer; divided by its batches, decisions a commit",
            ),
        )?;
        let event_writer = WriterMetrics::new(
            &registry,
            "event_writer",
            (
                "transactions",
                "Transactions the SQLite event writer committed (each carries the event batches waiting)",
            ),
            (
                "batches",
                "Event batches through the SQLite event writer; divided by its transactions, batches a commit",
            ),
        )?;
        Ok(Self {
            registry,
            requests,
            latency,
            pool,
            stages,
            stages_seen: Mutex::new(StageRuns::default()),
            decision_writer,
            event_writer,
        })
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    pub fn render(&self, store: &Store, decisions: WriterCounts, events: WriterCounts) -> String {
        let (in_use, idle) = store.pool_state();
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        self.pool.with_label_values(&["idle"]).set(i64::from(idle));
        self.count_stages();
        self.decision_writer.count(decisions);
        self.event_writer.count(events);
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }

    fn count_stages(&self) {
        // A poisoned lock only means a scrape panicked mid-way: the figures are still whole.
        let mut seen = self
            .stages_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = stage_runs();
        self.stages
            .with_label_values(&["compiled"])
            .inc_by(now.compiled.saturating_sub(seen.compiled));
        self.stages
            .with_label_values(&["interpreted"])
            .inc_by(now.interpreted.saturating_sub(seen.interpreted));
        *seen = now;
    }
}
