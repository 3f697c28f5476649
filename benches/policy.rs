//! Policy engine benchmarks; figures and commands in docs/benchmarks.md.
//!
//! `cargo bench --bench policy` runs criterion over:
//! - `credit_request/*`: the shipped default pipeline (the seven stages of
//!   policies/*.rhai) on a client as `GET /v1/clients/{id}` shows it, one
//!   evaluation being: the JSON's checks (`PolicyInput`), then the seven
//!   stages, which convert the values they read;
//! - `engine/*`: the parts (input conversion, per-run overhead, cache hit);
//! - `hostile/*`: how long a runaway script runs before the sandbox stops it.
//!
//! Two modes for tools, selected by environment variables:
//! - `POLICY_BENCH_PROFILE=N`: N evaluations of the default pipeline for the
//!   sound client (`POLICY_BENCH_CLIENT=risky`: the risky one), then exit
//!   (for `valgrind --tool=callgrind`; see docs/benchmarks.md);
//!   `POLICY_BENCH_FIRST_STAGES=K`: only the first K stages, so that the
//!   difference between K and K - 1 is what stage K costs;
//!   `POLICY_BENCH_TRIGGER=client_event`: the `client_event` pipeline
//!   (scoring, on_event) on a batch of two events instead;
//! - `POLICY_BENCH_HOSTILE=N`: runs each hostile script N times under several
//!   limits and prints the time to stop and the overshoot past the cap.
//!
//! `POLICY_BENCH_INTERPRET=1` runs the policies on rhai's interpreter instead
//! of compiled to closures, in every mode (the criterion groups also measure
//! the sound client interpreted).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use encours::policy::testing::{
    CLIENT_EVENT_STAGES, CREDIT_REQUEST_STAGES, client_view, minor_digits,
};
use encours::policy::{
    Baseline, Limits, Outcome, PipelineResult, PolicyEngine, PolicyInput, Stage, load_dir,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The server's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The default `credit_request` stages, compiled from policies/.
fn default_stages(engine: &PolicyEngine) -> Vec<Stage> {
    stages_of(engine, &CREDIT_REQUEST_STAGES)
}

/// The named default stages, compiled from policies/.
fn stages_of(engine: &PolicyEngine, names: &[&str]) -> Vec<Stage> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let files = load_dir(&dir).expect("policies/ loads");
    names
        .iter()
        .map(|name| {
            let file = files
                .iter()
                .find(|f| f.name == *name)
                .expect("every default stage is shipped");
            let policy = engine.compile(&file.source).expect("policy compiles");
            Stage::new(*name, 1, policy)
        })
        .collect()
}

/// A request as `POST /v1/credit-decisions` receives it.
fn request(amount: &str, terms_days: u32) -> Value {
    json!({
        "request_id": "REQ-2026-000123", "client_id": "CL-0001", "amount": amount,
        "currency": "EUR", "requested_terms_days": terms_days, "channel": "checkout",
        "order_ref": "SO-88412", "prospect": false,
    })
}

/// The sound, insured band-A client of the policy tests: no stage acts but scoring.
fn sound_client() -> Value {
    client_view(&json!({})).expect("default client")
}

/// A client in band D: every stage but hard_stops and insured_limit acts, so
/// the messages of cap, deposit, terms and review are all built.
fn risky_client() -> Value {
    client_view(&json!({
        "exposure": {"open_invoices": "35000.00", "reserved": "5000.00"},
        "overdue": {"amount": "8000.00", "max_days_past_due": 45},
        "payment_behaviour": {"invoices_paid": 48, "paid_late": 20, "average_days_late": 20},
        "alerts": {"negative": 2, "positive": 0},
    }))
    .expect("risky client")
}

fn amount(value: &Value) -> Option<Decimal> {
    value.as_str().and_then(|s| Decimal::from_str_exact(s).ok())
}

/// What the service does per request: baseline and input from the JSON, once
/// (the service gives its documents up to the input; here they are shared).
fn policy_input(request: &Arc<Value>, client: &Arc<Value>) -> PolicyInput {
    let digits = minor_digits(request["currency"].as_str().unwrap_or("EUR"));
    let baseline = Baseline::credit_request(
        amount(&request["amount"]).expect("request.amount"),
        request["requested_terms_days"]
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .expect("request.requested_terms_days"),
        amount(&client["credit_limit"]),
        digits,
    );
    PolicyInput::credit_request(Arc::clone(request), Arc::clone(client), baseline)
        .expect("valid input")
}

/// One evaluation, as measured by `credit_request/*` and profiled.
#[inline(never)]
fn evaluate(
    engine: &PolicyEngine,
    stages: &[Stage],
    request: &Arc<Value>,
    client: &Arc<Value>,
) -> PipelineResult {
    let input = policy_input(request, client);
    engine.run(stages, &input)
}

/// The last event of a batch as a client review sees it: a payment, then a
/// cover cut (the review acts on the cover).
fn event_batch() -> Value {
    let payment = json!({
        "event_id": "EV-1", "client_id": "CL-0001", "type": "payment_received",
        "occurred_at": "2026-03-02T08:00:00Z", "amount": "4200.00",
    });
    let cover = json!({
        "event_id": "EV-2", "client_id": "CL-0001", "type": "insurance_cover_changed",
        "occurred_at": "2026-03-02T09:00:00Z", "insurer": "Allianz Trade",
        "insured_amount": "30000.00", "valid_until": "2026-12-31",
    });
    let mut last = cover.clone();
    last["batch"] = json!([payment, cover]);
    last
}

/// One client review, as the service runs it after a batch of events.
#[inline(never)]
fn evaluate_event(
    engine: &PolicyEngine,
    stages: &[Stage],
    event: &Arc<Value>,
    client: &Arc<Value>,
) -> PipelineResult {
    let baseline = Baseline::client_event(amount(&client["credit_limit"]), 2);
    let input = PolicyInput::client_event(Arc::clone(event), Arc::clone(client), baseline)
        .expect("valid input");
    engine.run(stages, &input)
}

fn describe(label: &str, result: &PipelineResult) {
    let stages: Vec<String> = result
        .trace
        .iter()
        .map(|t| {
            format!(
                "{} {}e {}ops {}us",
                t.policy,
                t.effects.len(),
                t.operations,
                t.duration_us
            )
        })
        .collect();
    eprintln!(
        "{label}: {:?}, {} reasons [{}]",
        result.outcome,
        result.reasons.len(),
        stages.join(", ")
    );
}

/// The engine of the pipeline benchmarks: policies compiled to closures
/// unless `POLICY_BENCH_INTERPRET=1`.
fn pipeline_engine() -> PolicyEngine {
    let interpret = std::env::var("POLICY_BENCH_INTERPRET").as_deref() == Ok("1");
    PolicyEngine::new(Limits {
        compile: !interpret,
        ..Limits::default()
    })
}

fn bench_pipeline(c: &mut Criterion) {
    let engine = pipeline_engine();
    let stages = default_stages(&engine);
    let sound = (Arc::new(request("12500.00", 60)), Arc::new(sound_client()));
    let risky = (Arc::new(request("12500.00", 60)), Arc::new(risky_client()));

    let result = evaluate(&engine, &stages, &sound.0, &sound.1);
    assert_eq!(result.outcome, Outcome::Approved, "{result:#?}");
    describe("sound client", &result);
    let result = evaluate(&engine, &stages, &risky.0, &risky.1);
    assert_eq!(result.outcome, Outcome::Review, "{result:#?}");
    assert!(result.failed_stage().is_none(), "{result:#?}");
    describe("risky client", &result);

    let mut group = c.benchmark_group("credit_request");
    group.bench_function("sound client (input + 7 stages)", |b| {
        b.iter(|| evaluate(&engine, &stages, black_box(&sound.0), black_box(&sound.1)))
    });
    group.bench_function("risky client (input + 7 stages)", |b| {
        b.iter(|| evaluate(&engine, &stages, black_box(&risky.0), black_box(&risky.1)))
    });
    let interpreter = PolicyEngine::new(Limits {
        compile: false,
        ..Limits::default()
    });
    group.bench_function("sound client, interpreted (input + 7 stages)", |b| {
        b.iter(|| {
            evaluate(
                &interpreter,
                &stages,
                black_box(&sound.0),
                black_box(&sound.1),
            )
        })
    });
    let input = policy_input(&sound.0, &sound.1);
    group.bench_function("sound client (7 stages, input prebuilt)", |b| {
        b.iter(|| engine.run(black_box(&stages), black_box(&input)))
    });
    group.finish();

    let mut group = c.benchmark_group("engine");
    group.bench_function("check input (request + client JSON)", |b| {
        b.iter(|| policy_input(black_box(&sound.0), black_box(&sound.1)))
    });
    let empty = vec![Stage::new(
        "empty",
        1,
        engine.compile("").expect("compiles"),
    )];
    group.bench_function("run one empty stage (per-run overhead)", |b| {
        b.iter(|| engine.run(black_box(&empty), black_box(&input)))
    });
    let source = &load_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("policies/ loads")[0]
        .source;
    group.bench_function("compile cache hit (sha256 of source)", |b| {
        b.iter(|| engine.compile(black_box(source)))
    });
    group.finish();
}

/// Scripts that never finish on their own, and what is expected to stop them.
const HOSTILE: [(&str, &str); 7] = [
    ("loop", "let i = 0; loop { i += 1; }"),
    (
        "loop calling a function",
        "fn spin(n) { n + 1 }\nlet i = 0; loop { i = spin(i); }",
    ),
    (
        "loop over a 16 KB string",
        "let s = \"\"; s.pad(16000, \"y\"); let n = 0; loop { if s.contains(\"z\") { n += 1; } }",
    ),
    ("deep recursion", "fn down(n) { down(n + 1) }\ndown(0);"),
    (
        "wide recursion",
        "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib(30);",
    ),
    ("string doubling", "let s = \"x\"; loop { s += s; }"),
    ("array push", "let a = []; loop { a.push(0); }"),
];

fn hostile_stage(engine: &PolicyEngine, source: &str) -> Vec<Stage> {
    let policy = engine.compile(source).expect("hostile script compiles");
    vec![Stage::new("hostile", 1, policy)]
}

fn bench_hostile(c: &mut Criterion) {
    let engine = PolicyEngine::default();
    let input = policy_input(
        &Arc::new(request("12500.00", 60)),
        &Arc::new(sound_client()),
    );
    let mut group = c.benchmark_group("hostile (default limits)");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, source) in HOSTILE {
        let stages = hostile_stage(&engine, source);
        let result = engine.run(&stages, &input);
        assert!(result.failed_stage().is_some(), "{name} was not stopped");
        group.bench_function(name, |b| {
            b.iter(|| engine.run(black_box(&stages), black_box(&input)))
        });
    }
    group.finish();
}

/// `POLICY_BENCH_HOSTILE=N`: time to stop each hostile script, N runs each.
fn hostile_report(runs: usize) {
    let input = policy_input(
        &Arc::new(request("12500.00", 60)),
        &Arc::new(sound_client()),
    );
    let configs = [
        ("default limits", Limits::default()),
        (
            "timeout only (50 ms)",
            Limits {
                max_operations: 0,
                ..Limits::default()
            },
        ),
        (
            "timeout only (10 ms)",
            Limits {
                max_operations: 0,
                timeout_ms: 10,
                ..Limits::default()
            },
        ),
        (
            "operations only (200k)",
            Limits {
                timeout_ms: 0,
                ..Limits::default()
            },
        ),
    ];
    println!(
        "| limits | script | stopped by | min ms | median ms | p90 ms | max ms | median overshoot ms | max overshoot ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, limits) in configs {
        let engine = PolicyEngine::new(limits);
        for (name, source) in HOSTILE {
            let stages = hostile_stage(&engine, source);
            let mut times = Vec::with_capacity(runs);
            let mut kinds = Vec::new();
            for _ in 0..runs {
                let started = Instant::now();
                let result = engine.run(&stages, &input);
                times.push(started.elapsed());
                let kind = result
                    .failed_stage()
                    .and_then(|t| t.error.as_ref())
                    .map_or_else(|| "NOT STOPPED".to_owned(), |e| format!("{:?}", e.kind));
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            times.sort_unstable();
            let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
            let at = |q: usize| times[(runs - 1) * q / 100];
            // Past the wall-clock cap, for the runs that reached it.
            let cap = Duration::from_millis(limits.timeout_ms);
            let over: Vec<Duration> = times
                .iter()
                .filter(|t| limits.timeout_ms > 0 && **t >= cap)
                .map(|t| *t - cap)
                .collect();
            let (median_over, max_over) = match over.len() {
                0 => ("–".to_owned(), "–".to_owned()),
                n => (ms(over[n / 2]), ms(over[n - 1])),
            };
            println!(
                "| {label} | {name} | {} | {} | {} | {} | {} | {median_over} | {max_over} |",
                kinds.join(", "),
                ms(at(0)),
                ms(at(50)),
                ms(at(90)),
                ms(at(100)),
            );
        }
    }
}

fn env_count(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    if let Some(n) = env_count("POLICY_BENCH_PROFILE") {
        let engine = pipeline_engine();
        let mut stages = default_stages(&engine);
        if let Some(first) = env_count("POLICY_BENCH_FIRST_STAGES") {
            stages.truncate(first);
        }
        let client = Arc::new(match std::env::var("POLICY_BENCH_CLIENT").as_deref() {
            Ok("risky") => risky_client(),
            _ => sound_client(),
        });
        if std::env::var("POLICY_BENCH_TRIGGER").as_deref() == Ok("client_event") {
            let stages = stages_of(&engine, &CLIENT_EVENT_STAGES);
            let event = Arc::new(event_batch());
            // Not asserted: under valgrind the first run (caches cold) may
            // pass the wall-clock cap; the line shows what the runs did.
            describe(
                "client review",
                &evaluate_event(&engine, &stages, &event, &client),
            );
            let mut last = None;
            for _ in 0..n {
                last = Some(black_box(evaluate_event(
                    &engine,
                    &stages,
                    &event,
                    black_box(&client),
                )));
            }
            if let Some(result) = last {
                describe("last client review", &result);
            }
            return;
        }
        let request = Arc::new(request("12500.00", 60));
        for _ in 0..n {
            black_box(evaluate(&engine, &stages, &request, black_box(&client)));
        }
        return;
    }
    if let Some(n) = env_count("POLICY_BENCH_HOSTILE") {
        hostile_report(n.max(1));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_pipeline(&mut c);
    bench_hostile(&mut c);
    c.final_summary();
}
