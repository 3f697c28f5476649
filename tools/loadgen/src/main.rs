//! `loadgen`: an HTTP/1.1 load generator for benchmarking our own server.
//!
//! Closed loop (no `--rate`): every connection sends its next request as soon as the previous
//! answer arrives, for `--duration` seconds: the maximum throughput.
//!
//! Open loop (`--rate R`): requests are scheduled at R per second whatever the server does, and
//! each latency is measured from the request's scheduled time, not from when a connection was
//! free to send it, so a slow server cannot hide its queueing (no coordinated omission).

mod http;
mod request;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::{Mutex, mpsc};

use http::Connection;
use request::{Bodies, Pick, RequestTemplate, Target};

#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Target URL, http://HOST:PORT/PATH
    url: String,
    /// HTTP method.
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// JSON body template: `{n}` becomes a unique counter, `{client}` a client id.
    #[arg(long)]
    body: Option<String>,
    /// File of body templates, one a line (NDJSON), sent in turn instead of `--body`: request
    /// n takes line (n - first-n) mod L, and `{round}` in it becomes (n - first-n) div L.
    #[arg(long, conflicts_with = "body")]
    bodies_file: Option<PathBuf>,
    /// Sum this top-level integer field of the JSON answers 2xx (repeatable), e.g. how many
    /// events a batch endpoint accepted; the totals go in the report under `sums`.
    #[arg(long = "sum-field")]
    sum_fields: Vec<String>,
    /// File of client ids, one per line, for `{client}`.
    #[arg(long)]
    clients_file: Option<PathBuf>,
    /// How a request picks its client.
    #[arg(long, value_enum, default_value = "round-robin")]
    pick: Pick,
    /// Bearer token sent in `Authorization`.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Extra request header, "Name: value" (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Seconds to send for.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Open loop at this many requests per second (closed loop without it).
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// First value of `{n}`.
    #[arg(long, default_value_t = 1)]
    first_n: u64,
    /// Runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seconds before a request counts as timed out.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Exit 0 even when some answers are not 2xx or some requests failed.
    #[arg(long)]
    allow_errors: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What one connection saw.
struct Stats {
    /// From the scheduled send time (open loop) or the send (closed loop) to the full answer.
    latency: Histogram<u64>,
    /// From the actual send to the full answer.
    service: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    /// `--sum-field` totals; `unparsed` counts 2xx answers where a field was missing.
    sums: BTreeMap<String, i64>,
    unparsed: u64,
}

impl Stats {
    fn new() -> Stats {
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Stats {
            latency: histogram(),
            service: histogram(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            sums: BTreeMap::new(),
            unparsed: 0,
        }
    }

    /// Adds the `fields` of a 2xx answer's body to the sums.
    fn add_fields(&mut self, fields: &[String], body: &[u8]) {
        for field in fields {
            match top_level_integer(body, field) {
                Some(v) => *self.sums.entry(field.clone()).or_default() += v,
                None => self.unparsed += 1,
            }
        }
    }

    fn record(&mut self, result: Result<u16, String>, scheduled: Instant, sent: Instant) {
        let done = Instant::now();
        match result {
            Ok(status) => {
                *self.statuses.entry(status).or_default() += 1;
                self.latency.saturating_record(micros(done - scheduled));
                self.service.saturating_record(micros(done - sent));
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latency.add(other.latency).expect("same bounds");
        self.service.add(other.service).expect("same bounds");
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.sums {
            *self.sums.entry(k).or_default() += v;
        }
        self.unparsed += other.unparsed;
    }
}

/// The integer value of `"field":` in a JSON object, found by its last occurrence (the
/// answers we sum put their totals last, after any nested list): cheap enough to run on
/// every answer without taking CPU from the server under test.
fn top_level_integer(body: &[u8], field: &str) -> Option<i64> {
    let key = format!("\"{field}\":");
    let at = body.windows(key.len()).rposition(|w| w == key.as_bytes())?;
    let rest = &body[at + key.len()..];
    let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

struct Shared {
    addr: SocketAddr,
    template: RequestTemplate,
    sum_fields: Vec<String>,
    first_n: u64,
    timeout: Duration,
}

impl Shared {
    /// Sends request `n` on `conn`, (re)connecting first when needed; the status, or the kind
    /// of failure.
    async fn exchange(
        &self,
        conn: &mut Option<Connection>,
        n: u64,
        buffers: &mut (Vec<u8>, Vec<u8>),
    ) -> Result<u16, String> {
        self.template.render(n, &mut buffers.0, &mut buffers.1);
        if conn.is_none() {
            match tokio::time::timeout(self.timeout, Connection::connect(self.addr)).await {
                Ok(Ok(c)) => *conn = Some(c),
                Ok(Err(e)) => {
                    // Do not spin on a server that is gone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Err(format!("connect: {}", e.kind()));
                }
                Err(_) => return Err("connect: timeout".into()),
            }
        }
        let c = conn.as_mut().expect("connected above");
        c.keep_body = !self.sum_fields.is_empty();
        match tokio::time::timeout(self.timeout, c.round_trip(&buffers.0)).await {
            Ok(Ok(response)) => {
                if response.close {
                    *conn = None;
                }
                Ok(response.status)
            }
            Ok(Err(e)) => {
                *conn = None;
                Err(format!("io: {}", e.kind()))
            }
            Err(_) => {
                *conn = None;
                Err("timeout".into())
            }
        }
    }
}

impl Shared {
    /// Adds the `--sum-field`s of a 2xx answer (still in the connection) to the sums.
    fn sum(&self, stats: &mut Stats, result: &Result<u16, String>, conn: Option<&Connection>) {
        if self.sum_fields.is_empty() || !matches!(result, Ok(s) if (200..300).contains(s)) {
            return;
        }
        match conn {
            Some(c) => stats.add_fields(&self.sum_fields, &c.body),
            // Answered with `Connection: close`: the body went with the connection.
            None => stats.unparsed += 1,
        }
    }
}

/// Closed loop: send, wait for the answer, send again, until the deadline.
async fn closed_loop(
    shared: Arc<Shared>,
    mut conn: Option<Connection>,
    counter: Arc<AtomicU64>,
    deadline: Instant,
) -> Stats {
    let mut stats = Stats::new();
    let mut buffers = (Vec::new(), Vec::new());
    while Instant::now() < deadline {
        let n = shared.first_n + counter.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let result = shared.exchange(&mut conn, n, &mut buffers).await;
        shared.sum(&mut stats, &result, conn.as_ref());
        stats.record(result, sent, sent);
    }
    stats
}

type Tickets = Arc<Mutex<mpsc::UnboundedReceiver<(u64, Instant)>>>;

/// Open loop: take the next scheduled request, whenever this connection is free.
async fn open_loop(shared: Arc<Shared>, mut conn: Option<Connection>, tickets: Tickets) -> Stats {
    let mut stats = Stats::new();
    let mut buffers = (Vec::new(), Vec::new());
    loop {
        let ticket = tickets.lock().await.recv().await;
        let Some((i, scheduled)) = ticket else {
            return stats;
        };
        let sent = Instant::now();
        let result = shared
            .exchange(&mut conn, shared.first_n + i, &mut buffers)
            .await;
        shared.sum(&mut stats, &result, conn.as_ref());
        stats.record(result, scheduled, sent);
    }
}

/// Releases request i at start + i/rate, on a thread of its own: `thread::sleep` is precise to
/// tens of microseconds where the async timer rounds to milliseconds.
fn schedule(rate: f64, start: Instant, end: Instant) -> mpsc::UnboundedReceiver<(u64, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let period = 1e9 / rate;
        for i in 0u64.. {
            let at = start + Duration::from_nanos((i as f64 * period) as u64);
            if at >= end {
                break;
            }
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send((i, at)).is_err() {
                break;
            }
        }
    });
    rx
}

async fn run(args: &Args, shared: Arc<Shared>) -> Result<(Stats, Duration), String> {
    // Every connection is open before the clock starts.
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let conn = Connection::connect(shared.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", shared.addr))?;
        conns.push(conn);
    }
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.connections);
    match args.rate {
        None => {
            let counter = Arc::new(AtomicU64::new(0));
            for conn in conns {
                let task = closed_loop(
                    shared.clone(),
                    Some(conn),
                    counter.clone(),
                    start + duration,
                );
                tasks.push(tokio::spawn(task));
            }
        }
        Some(rate) => {
            let tickets = Arc::new(Mutex::new(schedule(rate, start, start + duration)));
            for conn in conns {
                tasks.push(tokio::spawn(open_loop(
                    shared.clone(),
                    Some(conn),
                    tickets.clone(),
                )));
            }
        }
    }
    let mut total = Stats::new();
    for task in tasks {
        total.merge(
            task.await
                .map_err(|e| format!("a connection task failed: {e}"))?,
        );
    }
    Ok((total, start.elapsed()))
}

fn quantiles(h: &Histogram<u64>) -> Vec<(&'static str, f64)> {
    let ms = |us: u64| us as f64 / 1000.0;
    vec![
        ("p50", ms(h.value_at_quantile(0.50))),
        ("p90", ms(h.value_at_quantile(0.90))),
        ("p99", ms(h.value_at_quantile(0.99))),
        ("p99.9", ms(h.value_at_quantile(0.999))),
        ("max", ms(h.max())),
        ("mean", h.mean() / 1000.0),
    ]
}

fn report(args: &Args, stats: &Stats, elapsed: Duration) -> serde_json::Value {
    let answered: u64 = stats.statuses.values().sum();
    let failed: u64 = stats.errors.values().sum();
    let ok: u64 = stats
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let secs = elapsed.as_secs_f64();
    let rate = answered as f64 / secs;
    // Open loop: a server that keeps up answers the last request shortly after the schedule
    // ends; one that does not leaves a queue that takes long to drain.
    let saturated = args.rate.is_some() && secs > args.duration * 1.1 + 0.5;
    let mode = match args.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => "closed loop".to_string(),
    };
    println!(
        "{} {} — {mode}, {} connections, {} s",
        args.method, args.url, args.connections, args.duration
    );
    println!("  answered   {answered} in {secs:.2} s");
    println!("  rate       {rate:.1} req/s");
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!("  status     {}", statuses.join(", "));
    if failed > 0 {
        let errors: Vec<String> = stats
            .errors
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!("  FAILED     {}", errors.join(", "));
    }
    let line = |h: &Histogram<u64>| {
        quantiles(h)
            .iter()
            .map(|(name, v)| format!("{name} {v:.3}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let what = if args.rate.is_some() {
        "from schedule"
    } else {
        "from send"
    };
    println!("  latency ms {}  ({what})", line(&stats.latency));
    if !args.sum_fields.is_empty() {
        let sums: Vec<String> = stats.sums.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  sums       {}", sums.join(", "));
        if stats.unparsed > 0 {
            println!(
                "  WARNING    {} fields not found in 2xx answers",
                stats.unparsed
            );
        }
    }
    if let Some(target) = args.rate {
        println!("  service ms {}  (from actual send)", line(&stats.service));
        if saturated {
            println!(
                "  WARNING    saturated: {target} req/s scheduled for {} s, answered at {rate:.1} \
                 req/s in {secs:.2} s (the latency includes the queue)",
                args.duration
            );
        }
    }
    let as_object = |h: &Histogram<u64>| {
        quantiles(h)
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({
        "url": args.url,
        "method": args.method,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "target_rate": args.rate,
        "connections": args.connections,
        "duration_s": args.duration,
        "elapsed_s": secs,
        "answered": answered,
        "ok_2xx": ok,
        "not_2xx": answered - ok,
        "failed": failed,
        "rate": rate,
        "saturated": saturated,
        "statuses": stats.statuses.iter().map(|(s, n)| (s.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
        "errors": stats.errors,
        "sums": stats.sums,
        "sums_unparsed": stats.unparsed,
        "latency_ms": as_object(&stats.latency),
        "service_ms": as_object(&stats.service),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_result(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::from(2)
        }
    }
}

fn main_result(args: &Args) -> Result<ExitCode, String> {
    if args.connections == 0 || args.duration <= 0.0 || args.rate.is_some_and(|r| r <= 0.0) {
        return Err("--connections, --duration and --rate must be positive".into());
    }
    let target = Target::parse(&args.url)?;
    let clients = match &args.clients_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        None => Vec::new(),
    };
    let mut headers = args.headers.clone();
    if let Some(token) = &args.token {
        headers.push(format!("Authorization: Bearer {token}"));
    }
    let body = match (&args.bodies_file, &args.body) {
        (Some(path), _) => Bodies::Lines(
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from)
                .collect(),
        ),
        (None, Some(t)) => Bodies::Template(t),
        (None, None) => Bodies::None,
    };
    let template = RequestTemplate::new(
        &args.method,
        &target,
        &headers,
        body,
        args.first_n,
        clients,
        args.pick,
    )?;

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        runtime.worker_threads(args.threads);
    }
    let runtime = runtime.enable_all().build().map_err(|e| e.to_string())?;
    let (stats, elapsed) = runtime.block_on(async {
        let addr = tokio::net::lookup_host(&target.authority)
            .await
            .map_err(|e| format!("{}: {e}", target.authority))?
            .next()
            .ok_or_else(|| format!("{}: no address", target.authority))?;
        let shared = Arc::new(Shared {
            addr,
            template,
            sum_fields: args.sum_fields.clone(),
            first_n: args.first_n,
            timeout: Duration::from_secs_f64(args.timeout),
        });
        run(args, shared).await
    })?;

    let summary = report(args, &stats, elapsed);
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{summary:#}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let bad = summary["not_2xx"].as_u64().unwrap_or(0) + summary["failed"].as_u64().unwrap_or(0);
    if bad > 0 && !args.allow_errors {
        eprintln!("loadgen: {bad} requests were not answered 2xx (--allow-errors to accept)");
        return Ok(ExitCode::FAILURE);
    }
    if summary["answered"].as_u64() == Some(0) {
        eprintln!("loadgen: no request was answered");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
