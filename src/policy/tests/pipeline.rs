use std::sync::Arc;

use super::super::{Limits, Outcome, POLICY_ERROR, PolicyEngine, Stage, StageErrorKind, compile};
use super::{d, failure, request, run, run_with, stages};

#[test]
fn money_in_a_policy_is_exact() {
    let r = run(
        &request("2794.65"),
        &[
            "if 0.10 + 0.20 == 0.30 { cap_amount(round_money(request.amount * 30 / 100, 2), \"CUT\", \"30 %\"); }",
        ],
    );
    assert_eq!(r.approved_amount.unwrap().to_string(), "838.40");
}

#[test]
fn caps_take_the_minimum_deposits_the_maximum_terms_the_minimum() {
    let r = run(
        &request("10000.00"),
        &[
            "cap_amount(6000, \"A1\", \"m\"); require_deposit(30, \"D1\", \"m\"); limit_terms(30, \"T1\", \"m\");",
            "cap_amount(8000, \"A2\", \"m\"); require_deposit(20, \"D2\", \"m\"); limit_terms(45, \"T2\", \"m\");",
            "cap_amount(12000, \"A3\", \"m\"); require_deposit(50, \"D3\", \"m\"); limit_terms(15, \"T3\", \"m\");",
        ],
    );
    assert_eq!(r.approved_amount.unwrap().to_string(), "6000.00");
    assert_eq!(r.deposit_percent, d("50"));
    assert_eq!(r.deposit_amount.unwrap().to_string(), "3000.00");
    assert_eq!(r.terms_days, Some(15));
    assert_eq!(r.reasons.len(), 9);
}

#[test]
fn outcome_composition_rules() {
    let cases: [(&[&str], Outcome); 8] = [
        (&["note(\"N\", \"m\");"], Outcome::Approved),
        (
            &[
                "cap_amount(20000, \"A\", \"m\"); limit_terms(60, \"T\", \"m\"); require_deposit(0, \"D\", \"m\");",
            ],
            Outcome::Approved,
        ),
        (
            &["require_deposit(20, \"D\", \"m\");"],
            Outcome::Conditional,
        ),
        (&["cap_amount(999.99, \"A\", \"m\");"], Outcome::Conditional),
        (&["limit_terms(30, \"T\", \"m\");"], Outcome::Conditional),
        (
            &["require_deposit(20, \"D\", \"m\");", "refer(\"R\", \"m\");"],
            Outcome::Review,
        ),
        (
            &["refer(\"R\", \"m\");", "decline(\"X\", \"m\");"],
            Outcome::Declined,
        ),
        (
            &[
                "decline(\"X\", \"m\");",
                "refer(\"R\", \"m\");",
                "require_deposit(20, \"D\", \"m\");",
            ],
            Outcome::Declined,
        ),
    ];
    for (sources, expected) in cases {
        assert_eq!(
            run(&request("1000.00"), sources).outcome,
            expected,
            "{sources:?}"
        );
    }
}

#[test]
fn declined_has_zero_approved_amount_and_no_deposit() {
    let r = run(
        &request("1000.00"),
        &["require_deposit(30, \"D\", \"m\"); decline(\"X\", \"m\");"],
    );
    assert_eq!(r.approved_amount.unwrap().to_string(), "0.00");
    assert_eq!(r.deposit_amount, None);
}

#[test]
fn later_stages_see_the_decision_so_far() {
    let r = run(
        &request("5000.00"),
        &[
            "set_score(65, \"D\", [#{code: \"LATE\", points: 65}]);",
            r#"if decision.band == "D" && decision.outcome == "approved" { require_deposit(30, "DEP_D", "band D"); }
               cap_amount(decision.approved_amount - 1000, "CUT", "m");"#,
            r#"if decision.outcome == "conditional" && decision.deposit_percent == 30
                  && decision.approved_amount == 4000 && decision.requested_amount == 5000
                  && decision.score == 65 && decision.factors[0].code == "LATE"
                  && decision.limit == 50000 && decision.terms_days == 60
                  && decision.requested_terms_days == 60 && decision.minor_digits == 2
                  && !decision.declined && !decision.referred && decision.client_status == () {
                   note("SAW_IT", "stage 3 saw the composed decision");
               }"#,
        ],
    );
    assert_eq!(r.reasons.last().unwrap().code, "SAW_IT", "{r:#?}");
}

#[test]
fn decision_factors_are_the_scores_factors_however_they_were_passed() {
    // `set_score` hands a list of plain `#{code, points}` maps over as
    // `decision.factors`; any other list is shown rebuilt from the factors.
    let engine = PolicyEngine::default();
    let shown = "note(\"F\", `${decision.factors}`); decision.factors[0].points = 0;";
    let a3_b2 = r#"[#{"code": "A", "points": 3}, #{"code": "B", "points": -2}]"#;
    for (scoring, expected) in [
        (
            r#"let f = []; f.add_factor("A", 3); f.add_factor("Z", 0); f.add_factor("B", -2); set_score(1, "A", f);"#,
            a3_b2,
        ),
        (
            r#"set_score(1, "A", [#{code: "A", points: 3, why: "x"}, #{points: -2, code: "B"}]);"#,
            a3_b2,
        ),
        (
            r#"let f = [#{code: "A", points: 3}, #{code: "B", points: -2}]; set_score(1, "A", f); f[0].points = 9;"#,
            a3_b2,
        ),
        (
            r#"set_score(1, "A", [#{code: "Q", points: 1}]); set_score(2, "A", [#{code: "A", points: 3, w: 1}, #{code: "B", points: -2}]);"#,
            a3_b2,
        ),
        (r#"set_score(1, "A", []);"#, "[]"),
    ] {
        let stages = stages(&engine, &[scoring, shown]);
        for run in 1..=3 {
            let r = engine.run(&stages, &request("1.00"));
            let note = &r.trace[1].effects[0].message;
            assert_eq!(note, expected, "{scoring}, run {run}");
            // And read-only, as everything an earlier stage wrote.
            assert_eq!(failure(&r).kind, StageErrorKind::Runtime, "{scoring}");
        }
    }
}

#[test]
fn a_failing_stage_fails_safe_to_review() {
    let r = run(
        &request("1000.00"),
        &[
            "decline(\"HARD\", \"first\");",
            "cap_amount(10, \"CUT\", \"m\");\nlet x = client.no_such_field;",
            "note(\"NEVER\", \"not reached\");",
        ],
    );
    assert_eq!(r.outcome, Outcome::Review);
    assert_eq!(r.trace.len(), 2, "the pipeline stops at the failure");
    let err = failure(&r);
    assert_eq!(err.kind, StageErrorKind::Runtime);
    assert!(err.message.contains("no_such_field"), "{err:?}");
    assert_eq!((err.line, err.column), (Some(2), Some(16)));
    // The failed stage's effects are traced but not applied.
    assert_eq!(r.trace[1].effects.len(), 1);
    assert_eq!(r.approved_amount.unwrap().to_string(), "1000.00");
    let last = r.reasons.last().unwrap();
    assert_eq!(
        (
            last.code.as_str(),
            last.policy.as_str(),
            last.policy_version
        ),
        (POLICY_ERROR, "s2", 2)
    );
    assert_eq!(
        last.message,
        "policy s2 v2 failed (runtime error); the decision needs manual review"
    );
    assert_eq!(r.reasons[0].code, "HARD");
}

#[test]
fn an_empty_pipeline_is_not_an_approval() {
    let engine = PolicyEngine::default();
    let r = engine.run(&[], &request("1.00"));
    assert_eq!(r.outcome, Outcome::Review);
    assert_eq!(r.reasons[0].code, POLICY_ERROR);
}

#[test]
fn inputs_are_read_only_and_stages_do_not_leak_variables() {
    // Inputs are JSON shared with the caller, converted where read or, for
    // the interpreter, as a whole: read-only either way.
    let engine = PolicyEngine::default();
    let both = |sources: &[&str]| engine.run(&stages(&engine, sources), &request("1.00"));
    for script in [
        "client.credit_limit = 1000000;",
        "client.alerts.negative = 0;",
        "request.amount += 1;",
        "client.risk.factors.push(1);",
        "client.risk.factors.add_factor(\"X\", 1);",
        "client.insurance.insured_amount = 0;",
        "decision.approved_amount = 1;",
    ] {
        let r = both(&[script]);
        assert_eq!(failure(&r).kind, StageErrorKind::Runtime, "{script}");
    }
    // What an earlier stage's effects wrote into `decision` is as read-only.
    let scored =
        "set_score(20, \"B\", [#{code: \"X\", points: 20}]); require_deposit(10, \"D\", \"m\");";
    for script in [
        "decision.factors.push(1);",
        "decision.factors[0].points = 0;",
        "decision.factors.add_factor(\"Y\", 1);",
        "decision.band = \"A\";",
        "decision.deposit_percent += 1;",
    ] {
        for runs in 1..=3 {
            let r = both(&[scored, script]);
            assert_eq!(
                failure(&r).kind,
                StageErrorKind::Runtime,
                "{script}, run {runs}"
            );
        }
    }
    let r = both(&[
        "let seen = 1; let c = client; c.credit_limit = 0; let e = client.exposure; e.total = 0;",
        "if is_def_var(\"seen\") || client.credit_limit != 50000 || client.exposure.total == 0 { decline(\"LEAK\", \"m\"); }",
    ]);
    assert_eq!(r.outcome, Outcome::Approved, "{r:#?}");
}

#[test]
fn request_and_event_exist_only_for_their_trigger() {
    let r = run(
        &request("1.00"),
        &["if event.type == \"x\" { note(\"X\", \"m\"); }"],
    );
    assert!(failure(&r).message.contains("event"), "{r:#?}");
}

#[test]
fn trace_names_each_stage() {
    let engine = PolicyEngine::default();
    let st = stages(
        &engine,
        &["print(\"hello \" + client.name);", "debug(request.amount);"],
    );
    let r = engine.run(&st, &request("12.50"));
    assert_eq!(r.trace[0].policy, "s1");
    assert_eq!(r.trace[0].sha256, st[0].policy.sha256());
    assert_eq!(r.trace[0].logs, ["hello Dupont SA"]);
    assert_eq!(r.trace[1].logs, ["line 1, position 1: 12.50"]);
    assert!(r.trace.iter().all(|t| t.error.is_none()));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"], "approved");
    assert_eq!(json["approved_amount"], "12.50");
}

#[test]
fn compiled_policies_are_shared_between_threads() {
    let engine = PolicyEngine::new(Limits::default());
    let policy = engine
        .compile("cap_amount(round_money(request.amount / 2, 2), \"HALF\", \"m\");")
        .unwrap();
    assert!(engine.cached(policy.sha256()).is_some());
    assert_eq!(engine.cached_count(), 1);
    let stages = Arc::new(vec![Stage::new("half", 1, policy)]);
    let handles: Vec<_> = (1..=4)
        .map(|i| {
            let (engine, stages) = (engine.clone(), Arc::clone(&stages));
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| {
                        engine
                            .run(&stages, &request(&format!("{i}00.00")))
                            .approved_amount
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let expected = d(&format!("{}.00", (i + 1) * 50));
        assert!(h.join().unwrap().iter().all(|a| *a == Some(expected)));
    }
}

#[test]
fn free_compile_matches_engine_compile() {
    let src = "note(\"X\", \"m\");";
    assert_eq!(
        compile(src).unwrap().sha256(),
        PolicyEngine::default().compile(src).unwrap().sha256()
    );
}

#[test]
fn results_round_trip_through_json() {
    let r = run(
        &request("1000.00"),
        &[
            "set_score(45, \"C\", [#{code: \"LATE\", points: 45}]);",
            "limit_terms(30, \"TERMS_C\", \"m\"); require_deposit(12.5, \"DEP\", \"m\"); cap_amount(900, \"CUT\", \"m\");",
            "let x = client.nope;",
        ],
    );
    let text = serde_json::to_string(&r).unwrap();
    let back: super::super::PipelineResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    let effect = serde_json::to_value(&r.trace[1].effects[0]).unwrap();
    assert_eq!(
        effect,
        serde_json::json!({"policy": "s2", "policy_version": 2, "kind": "limit_terms", "days": 30,
                           "code": "TERMS_C", "message": "m"})
    );
}

#[test]
fn the_trace_counts_operations_per_stage() {
    let r = run(
        &request("1.00"),
        &[
            "",
            "let x = 0; for i in 0..100 { x += i; }",
            "note(\"N\", \"m\");",
        ],
    );
    let ops: Vec<u64> = r.trace.iter().map(|t| t.operations).collect();
    assert_eq!(ops[0], 0);
    assert!(ops[1] > 200 && ops[1] < 1_000, "{ops:?}");
    assert!(ops[2] > 0 && ops[2] < 10, "{ops:?}");
    let json = serde_json::to_value(&r.trace[1]).unwrap();
    assert_eq!(json["operations"], ops[1]);
    // Traces stored before the field existed still read back.
    let mut old = json;
    old.as_object_mut().unwrap().remove("operations");
    let back: super::super::StageTrace = serde_json::from_value(old).unwrap();
    assert_eq!(back.operations, 0);
    // The same count with or without the wall-clock cap or the operation
    // limit (the engine drops its progress callback when there is no cap).
    for (max_operations, timeout_ms) in [(0, 0), (0, 50), (200_000, 0)] {
        let limits = Limits {
            max_operations,
            timeout_ms,
            ..Limits::default()
        };
        let again = run_with(
            limits,
            &request("1.00"),
            &["let x = 0; for i in 0..100 { x += i; }"],
        );
        assert_eq!(again.trace[0].operations, ops[1], "{limits:?}");
    }
}

#[test]
fn decision_is_updated_between_stages_and_cannot_be_changed_by_one() {
    let r = run(
        &request("5000.00"),
        &[
            "let f = || decision; let d = decision; d.limit = 1; d.factors.push(1); f.call();",
            "cap_amount(4000, \"CUT\", \"m\");",
            "note(\"N\", \"m\");",
            r#"if decision.limit == 50000 && decision.factors.len() == 0
                  && decision.approved_amount == 4000 && decision.outcome == "conditional" {
                   note("SAW_IT", "decision is as composed");
               }"#,
        ],
    );
    assert!(r.failed_stage().is_none(), "{r:#?}");
    assert_eq!(r.reasons.last().unwrap().code, "SAW_IT", "{r:#?}");
}
