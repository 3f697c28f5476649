//! Compiled policies against the interpreter: the same effects, outcome,
//! logs, errors and operation counts on every shipped case, through both
//! default pipelines on random clients, and on scripts at the edges of the
//! language; and the compiled path is really the one taken.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::super::engine::compiled_runs;
use super::super::testing::{CLIENT_EVENT_STAGES, CREDIT_REQUEST_STAGES, CaseInput};
use super::super::{Limits, PipelineResult, PolicyEngine, PolicyInput, Stage, load_dir};
use super::{request, stages};

fn interpreter(limits: Limits) -> PolicyEngine {
    PolicyEngine::new(Limits {
        compile: false,
        ..limits
    })
}

/// The result as JSON without what depends on the clock.
fn comparable(result: &PipelineResult) -> Value {
    let mut value = serde_json::to_value(result).unwrap();
    for stage in value["trace"].as_array_mut().unwrap() {
        stage.as_object_mut().unwrap().remove("duration_us");
    }
    value
}

/// Runs `stages` on `input` interpreted, then compiled three times (the first
/// runs fill rhai's resolution cache, which the compiled code calls through):
/// every run must give the interpreter's result. Returns the compiled stage
/// runs of the last one.
fn agree(limits: Limits, stages: &[Stage], input: &PolicyInput, what: &str) -> u64 {
    let expected = comparable(&interpreter(limits).run(stages, input));
    let compiled = PolicyEngine::new(limits);
    let mut last = 0;
    for _ in 0..3 {
        let before = compiled_runs();
        let actual = comparable(&compiled.run(stages, input));
        last = compiled_runs() - before;
        assert_eq!(actual, expected, "{what}");
    }
    last
}

fn shipped_stages(engine: &PolicyEngine, names: &[&str]) -> Vec<Stage> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let files = load_dir(dir).unwrap();
    names
        .iter()
        .map(|name| {
            let file = files.iter().find(|f| f.name == *name).unwrap();
            Stage::new(*name, 1, engine.compile(&file.source).unwrap())
        })
        .collect()
}

#[test]
fn every_shipped_case_gives_the_same_result_compiled() {
    let engine = PolicyEngine::default();
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut compiled = 0;
    let mut cases = 0;
    for file in load_dir(dir).unwrap() {
        let stage = vec![Stage::new(
            &file.name,
            1,
            engine.compile(&file.source).unwrap(),
        )];
        for case in &file.cases {
            let input = case.input.to_policy_input().unwrap();
            let what = format!("{} / {}", file.name, case.name);
            compiled += agree(Limits::default(), &stage, &input, &what);
            // And through the whole pipeline of its trigger.
            let names: &[&str] = if case.input.request.is_some() {
                &CREDIT_REQUEST_STAGES
            } else {
                &CLIENT_EVENT_STAGES
            };
            let pipeline = shipped_stages(&engine, names);
            agree(Limits::default(), &pipeline, &input, &what);
            cases += 1;
        }
    }
    // Every shipped stage compiles: each case's last run was compiled.
    assert_eq!(compiled, cases);
}

/// A client as `GET /v1/clients/{id}` shows it, drawn at random.
fn random_client(rng: &mut StdRng) -> Value {
    let money = |rng: &mut StdRng, max: u32| {
        format!(
            "{}.{:02}",
            rng.random_range(0..max),
            rng.random_range(0..100)
        )
    };
    let paid = rng.random_range(0..60);
    let legal = [
        "none",
        "none",
        "none",
        "safeguard",
        "receivership",
        "liquidation",
    ];
    let legal = legal[rng.random_range(0..legal.len())];
    json!({
        "is_prospect": rng.random_bool(0.1),
        "status": if rng.random_bool(0.1) { "blocked" } else { "active" },
        "credit_limit": money(rng, 150_000),
        "exposure": {"open_invoices": money(rng, 80_000), "reserved": money(rng, 20_000)},
        "overdue": {"amount": money(rng, 20_000), "max_days_past_due": rng.random_range(0..130)},
        "payment_behaviour": {
            "invoices_paid": paid,
            "paid_late": if paid == 0 { 0 } else { rng.random_range(0..=paid) },
            "average_days_late": if rng.random_bool(0.2) { Value::Null } else { json!(rng.random_range(0..60)) },
        },
        "insurance": if rng.random_bool(0.3) { Value::Null } else { json!({
            "insurer": "Allianz Trade", "insured_amount": money(rng, 120_000),
            "valid_until": if rng.random_bool(0.2) { "2025-06-30" } else { "2027-12-31" },
        }) },
        "external_score": if rng.random_bool(0.2) { Value::Null } else { json!({"provider": "X", "score": rng.random_range(0..=100), "as_of": "2026-01-01"}) },
        "alerts": {"negative": rng.random_range(0..4), "positive": rng.random_range(0..4)},
        "legal_status": legal,
    })
}

#[test]
fn random_clients_get_the_same_decisions_and_reviews_compiled() {
    let engine = PolicyEngine::default();
    let credit = shipped_stages(&engine, &CREDIT_REQUEST_STAGES);
    let events = shipped_stages(&engine, &CLIENT_EVENT_STAGES);
    let mut rng = StdRng::seed_from_u64(20261202);
    let mut compiled = 0;
    for i in 0..150 {
        let client = random_client(&mut rng);
        let amount = format!(
            "{}.{:02}",
            rng.random_range(0..160_000),
            rng.random_range(0..100)
        );
        let request = json!({"amount": amount, "requested_terms_days": rng.random_range(0..120)});
        let input = CaseInput {
            request: Some(request),
            event: None,
            client: client.clone(),
            decision: Default::default(),
        };
        let what = format!("client {i}: {client}");
        compiled += agree(
            Limits::default(),
            &credit,
            &input.to_policy_input().unwrap(),
            &what,
        );
        let event = json!({"type": "payment_received", "event_id": "E-1", "client_id": "C-1",
                           "occurred_at": "2026-11-30T10:00:00Z", "amount": "100.00"});
        let input = CaseInput {
            request: None,
            event: Some(event),
            client,
            decision: Default::default(),
        };
        compiled += agree(
            Limits::default(),
            &events,
            &input.to_policy_input().unwrap(),
            &what,
        );
    }
    assert!(compiled > 150 * 7, "{compiled} stages ran compiled");
}

/// Scripts at the edges: errors, `()`, mixed types, overflow, limits. Each
/// must give the interpreter's answer, compiled or not.
const EDGES: &[&str] = &[
    "let x = client.no_such_field;",
    "let x = client.overdue.amount + 1; note(\"N\", `${x}`);",
    "let x = 10 / 0;",
    "let x = 9223372036854775807 + 1;",
    "let x = -(-9223372036854775807 - 1);",
    "let x = 1.5 * 3; let y = x / 0.0;",
    "if () == () { note(\"A\", \"unit\"); } if client.insurance != () { note(\"B\", \"insured\"); }",
    "if 3 > () { note(\"A\", \"x\"); } if \"a\" < \"b\" { note(\"B\", \"y\"); } if true == false { note(\"C\", \"z\"); }",
    "if \"a\" == 1 { note(\"A\", \"x\"); } if [] != #{} { note(\"B\", `${[1, 2]}`); }",
    "let s = `${true} ${()} ${1.50} ${-3} ${\"x\"}`; note(\"S\", s);",
    "const C = 1; C = 2;",
    "client.alerts.negative = 3;",
    "let a = [1, 2, 3]; let b = a[5];",
    "let a = [1, 2, 3]; let b = a[-1]; note(\"A\", `${b}`);",
    "let m = #{a: 1}; let b = m[\"a\"] + m.a; note(\"M\", `${b}`);",
    "let t = 0; for x in [1, 2, 3] { t += x; } for x in [] {} for y in [4, 5] {} note(\"T\", `${t}`);",
    "let t = 0; for c in \"abc\" { t += 1; }",
    "let t = 0; for x in 0..3 { t += x; }",
    "let x = if client.is_prospect { 1 } else if client.status == \"active\" { 2 } else { 3 }; note(\"X\", `${x}`);",
    "if client.status == \"active\" { return; } note(\"N\", \"not reached\");",
    "let x = 1; { let x = 2; note(\"A\", `${x}`); } note(\"B\", `${x}`);",
    "let f = []; f.add_factor(\"A\", 3); f.add_factor(\"B\", 0); set_score(3, \"A\", f);",
    "client.risk.factors.add_factor(\"A\", 3);",
    "let f = client.risk.factors; f.add_factor(\"A\", 3);",
    "let s = client.name; let t = s.sub_string(0, 3) + s.len(); note(\"S\", `${t}`);",
    "let s = client.updated_at.sub_string(0, 10);",
    "let x = \"a\"; for i in 0..20 { x += x; }",
    "let x = min(1, 2.5) + max(3, 4) + abs(-2); note(\"X\", `${x}`);",
    "if client.legal_status in [\"none\", \"safeguard\"] && !(\"x\" in client) { note(\"L\", client.legal_status); }",
    "let p = points_from(45, [#{from: 31, points: 20}, #{from: 1, points: 5}]); note(\"P\", `${p}`);",
    "let p = points_from(\"x\", [#{from: 1, points: 5}]);",
    "let x = client; note(\"C\", x.currency);",
    "let x = 1; x = \"now a string\"; x += 1;",
    "let d = 0.1 + 0.2; if d == 0.3 { note(\"D\", `${d % 0.07}`); }",
    "let y = 5; y -= 2.5;",
    "let z = 5.0; z *= 2; z /= 4; z %= 2; note(\"Z\", `${z}`);",
    "let n = 1; while n < 5 { n += 1; }",
    "print(\"hello\"); debug(client.currency);",
    "throw \"stop\";",
    "decline(\"X\", 42);",
    "let a = [1, [2, 3], #{k: \"v\"}]; note(\"A\", `${a[1][0]} ${a[2].k} ${a.len()}`);",
    "let v = [1, 2, 3][1] + #{a: 5}.a + \"abc\".len() + [client.alerts.negative, 2][0]; note(\"V\", `${v}`);",
    "const L = [\"a\", \"b\"]; const M = #{a: 1}; let x = \"a\" in L; let y = contains(L, \"c\"); let z = \"a\" in M; for e in L { x = \"x\" in L; } note(\"C\", `${x} ${y} ${z} ${len(L)} ${L}`);",
    "const L = [1]; push(L, 2);",
    "const L = [1]; L.push(2);",
    "const L = [[1], [2]]; for e in L { e.push(3); } note(\"L\", `${L}`);",
    "let l = [[1], [2]]; for e in l { push(e, 3); } note(\"L\", `${l}`);",
    "const S = \"abc\"; let n = len(S) + S.len(); let t = sub_string(S, 1); note(\"N\", `${n} ${t} ${S}`);",
    "let f = []; f.add_factor(\"A\", 3); let s = 3; let b = \"A\"; set_score(s, b, f);",
    "let f = []; f.add_factor(\"A\", 3); set_score(3, \"A\", f);",
    "let c = \"C\"; note(c, c);",
    "let c = \"C\"; let m = [1]; note(c, `${m}`);",
    "let c = \"C\"; let m = \"msg\"; note(c, m);",
    "let x = [1]; let y = 2; push(x, y);",
    "let f = [#{code: \"A\", points: 150}]; set_score(50, \"C\", f);",
    "let x = 2; let b = x + { x = 5; 3 }; let c = { x = 7; 1 } + x; note(\"B\", `${b} ${c} ${x}`);",
    "let x = 3; const Y = 4; let z = x < Y && \"a\" != x && 2 * x >= Y - 1 && 1.5 < x; note(\"Z\", `${z}`);",
];

#[test]
fn scripts_at_the_edges_give_the_same_result_compiled() {
    let input = request("1234.55");
    for script in EDGES {
        let engine = PolicyEngine::default();
        let Ok(stage) = std::panic::catch_unwind(|| stages(&engine, &[script])) else {
            continue; // does not compile: nothing to compare
        };
        let n = agree(Limits::default(), &stage, &input, script);
        println!("{n} {script}");
        // With a budget that runs out part-way, at every point.
        for max_operations in 1..40 {
            let limits = Limits {
                max_operations,
                ..Limits::default()
            };
            agree(
                limits,
                &stage,
                &input,
                &format!("{script} ({max_operations} operations)"),
            );
        }
    }
}

#[test]
fn the_operation_limit_is_reached_at_the_same_count_in_the_default_pipeline() {
    let engine = PolicyEngine::default();
    let credit = shipped_stages(&engine, &CREDIT_REQUEST_STAGES);
    let input = request("12500.00");
    for max_operations in [1, 5, 17, 40, 90, 150, 200, 260] {
        let limits = Limits {
            max_operations,
            ..Limits::default()
        };
        agree(
            limits,
            &credit,
            &input,
            &format!("{max_operations} operations"),
        );
    }
}

#[test]
fn the_wall_clock_cap_stops_compiled_code_too() {
    // Nested loops over arrays compile, and with no operation limit only the
    // clock stops them: ten billion iterations would take minutes.
    let limits = Limits {
        max_operations: 0,
        timeout_ms: 20,
        ..Limits::default()
    };
    let script = format!(
        "let a = [{}]; let n = 0;\n\
         for b in a {{ for c in a {{ for d in a {{ for e in a {{ for f in a {{ n += 1; }} }} }} }} }}",
        ["0"; 60].join(", ")
    );
    let engine = PolicyEngine::new(limits);
    let stage = stages(&engine, &[script.as_str()]);
    let before = compiled_runs();
    let started = std::time::Instant::now();
    let r = engine.run(&stage, &request("1.00"));
    let err = super::failure(&r);
    assert_eq!(err.kind, super::super::StageErrorKind::Timeout, "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // It was compiled: the run gave up at the deadline, not at compile time.
    assert!(super::super::compiled::compiles(&script));
    assert_eq!(compiled_runs(), before);
}

#[test]
fn a_policy_of_both_triggers_is_compiled_once_for_each() {
    // `scoring` runs for credit requests (with `request`) and client events
    // (with `event`): one compiled form each, kept, not one replacing the other.
    let engine = PolicyEngine::default();
    let scoring = shipped_stages(&engine, &["scoring"]);
    let credit = request("100.00");
    let alert = json!({"type": "sales_alert", "event_id": "E-1", "client_id": "C-1",
                       "occurred_at": "2026-11-30T10:00:00Z", "sentiment": "negative"});
    let event = super::event(alert);
    for input in [&credit, &event, &credit, &event] {
        engine.run(&scoring, input);
    }
    let before = (super::super::compiled::compilations(), compiled_runs());
    for input in [&credit, &event, &credit, &event] {
        engine.run(&scoring, input);
    }
    let after = (super::super::compiled::compilations(), compiled_runs());
    assert_eq!(after.0, before.0, "recompiled");
    assert_eq!(after.1, before.1 + 4, "not all runs compiled");
}

mod random_scripts {
    //! Random scripts over the values policies handle (numbers, decimals,
    //! strings, `()`, booleans, the inputs' properties), through every
    //! construct the compiler supports: compiled and interpreted must agree,
    //! errors and operation counts included.

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::super::super::{Limits, PolicyEngine};
    use super::super::{request, stages};
    use super::agree;

    /// Numbers: INT, Decimal, the inputs' amounts and counts; one leaf in
    /// twenty is of another type or missing, for the errors.
    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "7",
        "-3",
        "100",
        "9223372036854775807",
        "0.1",
        "1.50",
        "-2.25",
        "x",
        "client.credit_limit",
        "client.overdue.max_days_past_due",
        "client.overdue.amount",
        "client.external_score.score",
        "client.alerts.negative",
        "decision.limit",
        "request.amount",
        "client.exposure.total",
        "client.payment_behaviour.invoices_paid",
    ];
    const STRINGS: &[&str] = &[
        "\"a\"",
        "\"EUR\"",
        "\"\"",
        "client.currency",
        "decision.band",
        "client.legal_status",
        "client.status",
        "y",
    ];
    const ODD: &[&str] = &[
        "()",
        "client.insurance",
        "client.no_such_field",
        "client.risk.factors",
        "true",
        "decision.declined",
        "\"text\"",
    ];
    const ARITHMETIC: &[&str] = &["+", "-", "*", "/", "%"];
    const COMPARISONS: &[&str] = &["==", "!=", "<", "<=", ">", ">="];

    fn leaf(common: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop_oneof![
            19 => proptest::sample::select(common).prop_map(str::to_owned),
            1 => proptest::sample::select(ODD).prop_map(str::to_owned),
        ]
    }

    fn number() -> impl Strategy<Value = String> {
        leaf(NUMBERS).prop_recursive(3, 16, 2, |n| {
            prop_oneof![
                (n.clone(), proptest::sample::select(ARITHMETIC), n.clone())
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                n.clone().prop_map(|a| format!("(- {a})")),
                (n.clone(), n.clone()).prop_map(|(a, b)| format!("max({a}, {b})")),
                (n.clone(), n.clone(), n.clone())
                    .prop_map(|(a, b, c)| format!("(if {a} > {b} {{ {b} }} else {{ {c} }})")),
                (n.clone(), n.clone()).prop_map(|(a, b)| format!("[{a}, {b}][1]")),
                n.clone().prop_map(|a| format!("#{{k: {a}}}.k")),
            ]
        })
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => leaf(STRINGS),
            1 => (number(), leaf(STRINGS)).prop_map(|(a, b)| format!("`{a}=${{{a}}} ${{{b}}}`")),
        ]
    }

    fn condition() -> impl Strategy<Value = String> {
        let compare = prop_oneof![
            (number(), proptest::sample::select(COMPARISONS), number())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (text(), proptest::sample::select(COMPARISONS), text())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            leaf(ODD).prop_map(|a| format!("({a} == ())")),
            text().prop_map(|a| format!("({a} in [\"EUR\", \"B\", \"none\"])")),
        ];
        compare.prop_recursive(2, 8, 2, |c| {
            prop_oneof![
                (c.clone(), c.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
                (c.clone(), c.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
                c.prop_map(|a| format!("(!{a})")),
            ]
        })
    }

    fn script() -> impl Strategy<Value = String> {
        let parts = (number(), text(), condition(), number(), text(), 0usize..4);
        parts.prop_map(|(a, b, c, d, e, shape)| {
            let body = match shape {
                0 => format!("note(\"N\", `${{{d}}} ${{{e}}}`);"),
                1 => format!("if {c} {{ note(\"A\", `${{{d}}}`); }} else {{ y = {e}; }}"),
                2 => format!("x += {d}; for f in [{d}, {a}] {{ x = f; }} y = {e};"),
                _ => format!("if {c} {{ return; }} let z = {d}; note(\"Z\", `${{z}} ${{{e}}}`);"),
            };
            format!("let x = 0;\nlet y = \"\";\nx = {a};\ny = {b};\n{body}\nnote(\"END\", `${{x}}/${{y}}`);")
        })
    }

    #[test]
    fn compiled_and_interpreted_agree_on_random_scripts() {
        let input = request("1234.55");
        let mut runner = TestRunner::new(Config {
            cases: 1000,
            failure_persistence: None,
            ..Config::default()
        });
        let (parsed, compiled) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        runner
            .run(&(script(), 0u64..120), |(source, budget)| {
                let engine = PolicyEngine::default();
                if engine.compile(&source).is_err() {
                    return Ok(()); // a parse error: nothing to compare
                }
                parsed.set(parsed.get() + 1);
                let stage = stages(&engine, &[source.as_str()]);
                let runs = agree(Limits::default(), &stage, &input, &source);
                compiled.set(compiled.get() + runs);
                let limits = Limits {
                    max_operations: budget.max(1),
                    ..Limits::default()
                };
                agree(
                    limits,
                    &stage,
                    &input,
                    &format!("{source} ({budget} operations)"),
                );
                Ok(())
            })
            .unwrap();
        // Many random scripts fail (types, a missing field): enough must parse
        // and run compiled to the end for the comparison to mean something.
        let (parsed, compiled) = (parsed.get(), compiled.get());
        println!("{parsed} random scripts parsed, {compiled} ran compiled to the end");
        assert!(
            parsed >= 900 && compiled >= 400,
            "{parsed} parsed, {compiled} compiled"
        );
    }
}
