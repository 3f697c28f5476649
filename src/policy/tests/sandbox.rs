use std::time::{Duration, Instant};

use super::super::{Limits, Outcome, PolicyEngine, StageErrorKind};
use super::{failure, request, run, run_with};

fn kind(limits: Limits, script: &str) -> StageErrorKind {
    let r = run_with(limits, &request("1.00"), &[script]);
    assert_eq!(r.outcome, Outcome::Review);
    failure(&r).kind
}

#[test]
fn an_infinite_loop_is_stopped() {
    let started = Instant::now();
    let k = kind(Limits::default(), "loop { }");
    assert!(
        matches!(k, StageErrorKind::OperationLimit | StageErrorKind::Timeout),
        "{k:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_operation_limit_stops_a_loop() {
    let limits = Limits {
        max_operations: 10_000,
        timeout_ms: 60_000,
        ..Limits::default()
    };
    let r = run_with(
        limits,
        &request("1.00"),
        &["let i = 0;\nwhile true { i += 1; }"],
    );
    let err = failure(&r);
    assert_eq!(err.kind, StageErrorKind::OperationLimit);
    assert_eq!(err.message, "stopped: more than 10000 operations");
    assert_eq!(r.trace[0].operations, 10_000);
}

#[test]
fn the_wall_clock_cap_stops_a_loop() {
    let limits = Limits {
        max_operations: 0,
        timeout_ms: 20,
        ..Limits::default()
    };
    let started = Instant::now();
    let r = run_with(
        limits,
        &request("1.00"),
        &["fn spin(n) { n + 1 }\nlet i = 0; loop { i = spin(i); }"],
    );
    let err = failure(&r);
    assert_eq!(err.kind, StageErrorKind::Timeout, "{err:?}");
    assert_eq!(
        err.message,
        "stopped: ran longer than the 20 ms wall-clock limit"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(r.trace[0].duration_us >= 20_000);
}

#[test]
fn deep_recursion_is_stopped() {
    let k = kind(Limits::default(), "fn down(n) { down(n + 1) }\ndown(0);");
    assert_eq!(k, StageErrorKind::CallDepth);
}

#[test]
fn huge_string_array_and_map_are_stopped() {
    let limits = Limits::default;
    assert_eq!(
        kind(limits(), "let s = \"x\"; loop { s += s; }"),
        StageErrorKind::DataTooLarge
    );
    assert_eq!(
        kind(limits(), "let s = \"\"; s.pad(20000, \"y\");"),
        StageErrorKind::DataTooLarge
    );
    assert_eq!(
        kind(limits(), "let a = []; a.pad(20000, 0);"),
        StageErrorKind::DataTooLarge
    );
    assert_eq!(
        kind(limits(), "let a = [1]; loop { a += a; }"),
        StageErrorKind::DataTooLarge
    );
    // Growing one element at a time re-measures the whole value each time
    // (quadratic, stopped by the clock at the default sizes): use small limits.
    let small = Limits {
        max_array_size: 100,
        max_map_size: 100,
        ..Limits::default()
    };
    assert_eq!(
        kind(small, "let a = []; for i in 0..200 { a.push(i); }"),
        StageErrorKind::DataTooLarge
    );
    // rhai does not measure a map on `m[k] = v`, only when the map is next
    // used; the operation budget bounds how far it can grow before that.
    assert_eq!(
        kind(
            small,
            "let m = #{}; for i in 0..200 { m[`k${i}`] = i; }\nm.len()"
        ),
        StageErrorKind::DataTooLarge
    );
}

#[test]
fn deep_expressions_are_refused_at_compile_time() {
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(PolicyEngine::default().compile(&deep).is_err());
}

#[test]
fn nothing_reaches_outside() {
    // No sleep (it would block beyond the clock), no clock, no eval, no modules.
    for script in [
        "sleep(1);",
        "timestamp();",
        "parse_json(\"{}\");",
        "exit();",
    ] {
        let r = run(&request("1.00"), &[script]);
        assert!(
            failure(&r).message.contains("Function not found"),
            "{script}: {r:#?}"
        );
    }
    for script in ["eval(\"1\");", "import \"x\" as y;"] {
        assert!(PolicyEngine::default().compile(script).is_err(), "{script}");
    }
}

#[test]
fn missing_property_and_undefined_variable_in_a_function_are_errors() {
    let r = run(&request("1.00"), &["client.exposure.missing > 0"]);
    assert!(failure(&r).message.contains("Property not found: missing"));
    let r = run(&request("1.00"), &["fn f() { client.credit_limit }\nf();"]);
    assert!(
        failure(&r).message.contains("Variable not found: client"),
        "{r:#?}"
    );
}

#[test]
fn inputs_stay_unchanged_for_later_stages_whatever_a_stage_does() {
    // Capturing a variable in a closure makes it shared in rhai; constants must
    // stay protected anyway, and copies must not write through.
    let writers = [
        "let f = || client; let c = client; c.credit_limit = 2; c.risk.factors.push(1);",
        "fn m(x) { x.credit_limit = 3; } m(client);",
        "fn set() { this.credit_limit = 4; } client.set();",
        "let f = |x| { let c = client; c.credit_limit = x; c }; f.call(5);",
    ];
    for writer in writers {
        let reader = "if client.credit_limit != 50000 || client.risk.factors.len() != 0 { decline(\"LEAK\", \"m\"); }";
        let r = run(&request("1.00"), &[writer, reader]);
        assert_ne!(r.outcome, Outcome::Declined, "{writer}: {r:#?}");
        if let Some(t) = r.failed_stage() {
            assert_eq!(t.policy, "s1", "{writer}: {r:#?}");
        }
    }
}
