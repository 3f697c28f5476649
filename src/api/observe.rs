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
use crate::service::committer::WriterCounts;
use crate::service::policies::{StageRuns, stage_runs};
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
    writer_batches: IntCounter,
    writer_decisions: IntCounter,
    writer_busy: Counter,
    writer_seen: Mutex<WriterCounts>,
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
        let writer_batches = IntCounter::new(
            "decision_writer_batches_total",
            "Transactions the decision writer committed (each carries every decision waiting)",
        )?;
        let writer_decisions = IntCounter::new(
            "decision_writer_decisions_total",
            "Decisions through the decision writer; divided by its batches, decisions a commit",
        )?;
        let writer_busy = Counter::new(
            "decision_writer_busy_seconds_total",
            "Wall-clock time the decision writer spent on batches; its rate near 1 means the writer is the ceiling",
        )?;
        registry.register(Box::new(stages.clone()))?;
        registry.register(Box::new(writer_batches.clone()))?;
        registry.register(Box::new(writer_decisions.clone()))?;
        registry.register(Box::new(writer_busy.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            pool,
            stages,
            stages_seen: Mutex::new(StageRuns::default()),
            writer_batches,
            writer_decisions,
            writer_busy,
            writer_seen: Mutex::new(WriterCounts::default()),
        })
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    pub fn render(&self, store: &Store, writer: WriterCounts) -> String {
        let (in_use, idle) = store.pool_state();
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        self.pool.with_label_values(&["idle"]).set(i64::from(idle));
        self.count_stages();
        self.count_writer(writer);
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }

    fn count_writer(&self, now: WriterCounts) {
        let mut seen = self
            .writer_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.writer_batches
            .inc_by(now.batches.saturating_sub(seen.batches));
        self.writer_decisions
            .inc_by(now.decisions.saturating_sub(seen.decisions));
        // Microseconds as integers until here, so that no rounding adds up.
        let micros = now.busy_micros.saturating_sub(seen.busy_micros);
        self.writer_busy.inc_by(micros as f64 / 1e6);
        *seen = now;
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
