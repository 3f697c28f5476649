//! The shipped policy set (policies/): every file's cases pass, a broken copy
//! fails them, and the stages together make sound decisions.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::super::testing::{
    CLIENT_EVENT_STAGES, CREDIT_REQUEST_STAGES, CaseInput, PolicyFile, client_view,
};
use super::super::{
    Band, ClientStatus, Outcome, PipelineResult, PolicyEngine, Stage, load_dir, run_cases,
    test_dir, test_file,
};
use super::d;

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn shipped() -> Vec<PolicyFile> {
    load_dir(policies_dir()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_policy_passes_its_cases() {
    let engine = PolicyEngine::default();
    let reports = test_dir(&engine, policies_dir()).unwrap_or_else(|e| panic!("{e}"));
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(ToString::to_string)
        .collect();
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
    for report in &reports {
        println!("{report}");
    }
}

#[test]
fn the_shipped_set_is_complete_and_well_covered() {
    let files = shipped();
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = CREDIT_REQUEST_STAGES
        .iter()
        .chain(&CLIENT_EVENT_STAGES)
        .copied()
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(names, expected);
    for file in &files {
        assert!(
            file.cases.len() >= 5,
            "{}: only {} cases",
            file.name,
            file.cases.len()
        );
        assert!(
            file.description().is_some(),
            "{}: no header comment",
            file.name
        );
        assert!(!file.triggers().is_empty(), "{}", file.name);
    }
}

#[test]
fn a_broken_copy_fails_its_cases() {
    let engine = PolicyEngine::default();
    let deposit = shipped()
        .into_iter()
        .find(|f| f.name == "deposit")
        .expect("deposit policy");
    let broken = deposit
        .source
        .replace("const DEPOSIT_BAND_D = 30;", "const DEPOSIT_BAND_D = 25;");
    assert_ne!(
        broken, deposit.source,
        "the constant moved: update this test"
    );
    let broken = PolicyFile {
        source: broken,
        ..deposit
    };
    let report = test_file(&engine, &broken);
    assert!(!report.passed());
    let failures: Vec<&String> = report.cases.iter().flat_map(|c| &c.failures).collect();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("require_deposit DEPOSIT_BAND_D: expected percent 30, got 25")),
        "{report}"
    );
    // The same cases through the API entry point.
    let policy = engine.compile(&broken.source).unwrap();
    let outcomes = run_cases(&engine, "deposit", 2, &policy, &broken.cases);
    assert!(outcomes.iter().any(|o| !o.passed));
    assert!(
        outcomes.iter().any(|o| o.passed),
        "only band D cases should fail"
    );
}

/// The default stages of a trigger, compiled from policies/.
fn pipeline(engine: &PolicyEngine, names: &[&str]) -> Vec<Stage> {
    let files = shipped();
    names
        .iter()
        .map(|name| {
            let file = files
                .iter()
                .find(|f| f.name == *name)
                .expect("shipped policy");
            let policy = engine
                .compile(&file.source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            Stage::new(*name, 1, policy)
        })
        .collect()
}

/// Runs the credit_request pipeline on a request and a client patch.
fn decide(request: Value, client: Value) -> PipelineResult {
    let engine = PolicyEngine::default();
    let input = CaseInput {
        request: Some(request),
        event: None,
        client,
        decision: Default::default(),
    };
    let result = engine.run(
        &pipeline(&engine, &CREDIT_REQUEST_STAGES),
        &input.to_policy_input().unwrap(),
    );
    assert!(result.failed_stage().is_none(), "{result:#?}");
    result
}

fn on_event(event: Value, client: Value) -> PipelineResult {
    let engine = PolicyEngine::default();
    let input = CaseInput {
        request: None,
        event: Some(event),
        client,
        decision: Default::default(),
    };
    let result = engine.run(
        &pipeline(&engine, &CLIENT_EVENT_STAGES),
        &input.to_policy_input().unwrap(),
    );
    assert!(result.failed_stage().is_none(), "{result:#?}");
    result
}

/// Compiled, the default credit_request stages read the request and the client
/// where they need to: neither is converted whole (the whole client's map cost a
/// sixth of a run); the on_event stage takes `event` whole where it reads it bare
/// (`[event]` for a single event; `"batch" in event` is answered on the JSON).
/// A stage that makes a call no earlier run of it made on the thread is
/// interpreted (the interpreter fills the call caches the compiled code calls
/// through; see `compiled::agree`), and converts both: warmed up, a run on each
/// client is the one that counts.
#[test]
fn a_credit_request_converts_only_what_its_stages_read() {
    let engine = PolicyEngine::default();
    let conversions = super::super::input::whole_conversions;
    let run = |trigger: &[&str], request: Option<Value>, event: Option<Value>, client: Value| {
        let input = CaseInput {
            request,
            event,
            client,
            decision: Default::default(),
        };
        let stages = pipeline(&engine, trigger);
        let input = input.to_policy_input().unwrap();
        for _ in 0..3 {
            engine.run(&stages, &input);
        }
        let before = conversions();
        let result = engine.run(&stages, &input);
        assert!(result.failed_stage().is_none(), "{result:#?}");
        conversions() - before
    };
    let request = || Some(json!({"amount": "12500.00", "requested_terms_days": 60}));
    for client in [json!({}), band_d_client(), prospect()] {
        assert_eq!(run(&CREDIT_REQUEST_STAGES, request(), None, client), 0);
    }
    let event = Some(json!({"type": "payment_received", "amount": "100.00"}));
    assert_eq!(
        run(&CLIENT_EVENT_STAGES, None, event, json!({})),
        1,
        "the event, whole, at its bare read"
    );
}

fn codes(result: &PipelineResult) -> Vec<&str> {
    result.reasons.iter().map(|r| r.code.as_str()).collect()
}

/// A client that pays 45 days late and is poorly rated: band D, insured.
fn band_d_client() -> Value {
    json!({
        "overdue": {"amount": "400.00", "max_days_past_due": 45},
        "payment_behaviour": {"invoices_paid": 30, "paid_late": 12, "average_days_late": 20},
        "external_score": {"score": 35},
        "alerts": {"negative": 1, "positive": 0},
    })
}

fn prospect() -> Value {
    json!({
        "client_id": "PR-0107", "name": "Boulangerie Nouvelle SAS", "is_prospect": true,
        "credit_limit": "0.00", "exposure": {"open_invoices": "0.00", "reserved": "0.00"},
        "payment_behaviour": {"invoices_paid": 0, "paid_late": 0, "average_days_late": null},
        "insurance": null, "external_score": null,
    })
}

#[test]
fn a_good_insured_client_is_approved_in_full() {
    let r = decide(
        json!({"amount": "18500.00", "requested_terms_days": 45}),
        json!({}),
    );
    assert_eq!(r.outcome, Outcome::Approved, "{:?}", codes(&r));
    assert_eq!(r.approved_amount, Some(d("18500.00")));
    assert_eq!((r.terms_days, r.deposit_amount), (Some(45), None));
    assert_eq!(r.band, Some(Band::A));
    assert_eq!(codes(&r), ["RISK_SCORE"]);
}

#[test]
fn an_order_above_the_insured_room_is_cut() {
    // Limit 100 000, insured 50 000, exposure 40 000: 10 000 left.
    let r = decide(
        json!({"amount": "25000.00"}),
        json!({"credit_limit": "100000.00", "exposure": {"open_invoices": "38000.00", "reserved": "2000.00"}}),
    );
    assert_eq!(r.outcome, Outcome::Conditional);
    assert_eq!(r.limit, Some(d("50000.00")));
    assert_eq!(r.approved_amount.unwrap().to_string(), "10000.00");
    assert_eq!(
        codes(&r),
        [
            "RISK_SCORE",
            "LIMIT_CAPPED_TO_INSURED",
            "AMOUNT_CAPPED_TO_AVAILABLE"
        ]
    );
}

#[test]
fn receivership_is_declined_with_nothing_approved() {
    let r = decide(
        json!({"amount": "5000.00"}),
        json!({"legal_status": "receivership"}),
    );
    assert_eq!(r.outcome, Outcome::Declined);
    assert_eq!(r.approved_amount.unwrap().to_string(), "0.00");
    assert_eq!((r.deposit_amount, r.band), (None, Some(Band::D)));
    // Later stages add nothing to a declined order.
    assert_eq!(codes(&r), ["RISK_SCORE", "INSOLVENCY_PROCEEDINGS"]);
}

#[test]
fn band_d_pays_a_deposit_on_short_terms() {
    let r = decide(
        json!({"amount": "12000.00", "requested_terms_days": 60}),
        band_d_client(),
    );
    assert_eq!(r.band, Some(Band::D), "{:?}", r.factors);
    assert_eq!(r.outcome, Outcome::Conditional);
    assert!(r.deposit_percent >= d("30"));
    assert_eq!(r.deposit_amount.unwrap().to_string(), "3600.00");
    assert!(r.terms_days.unwrap() <= 15);
    assert_eq!(r.approved_amount, Some(d("12000.00")));
}

#[test]
fn an_uninsured_band_d_client_gets_no_open_credit() {
    let mut client = band_d_client();
    client["insurance"] = Value::Null;
    let r = decide(json!({"amount": "2000.00"}), client);
    assert_eq!(r.outcome, Outcome::Declined);
    assert_eq!(
        codes(&r),
        [
            "RISK_SCORE",
            "NO_OPEN_CREDIT_UNINSURED",
            "NO_CREDIT_AVAILABLE"
        ]
    );
}

#[test]
fn a_prospect_without_history_pays_a_deposit_within_its_opening_limit() {
    let r = decide(
        json!({"amount": "3000.00", "channel": "checkout"}),
        prospect(),
    );
    assert_eq!((r.score, r.band), (Some(30), Some(Band::B)));
    assert_eq!(r.outcome, Outcome::Conditional);
    assert_eq!(r.deposit_percent, d("20"));
    assert_eq!(r.deposit_amount.unwrap().to_string(), "600.00");
    assert_eq!(r.limit, Some(d("5000.00")));

    let r = decide(json!({"amount": "8000.00"}), prospect());
    assert_eq!(r.approved_amount.unwrap().to_string(), "5000.00");
    assert_eq!(r.deposit_amount.unwrap().to_string(), "1000.00");
}

#[test]
fn a_large_order_goes_to_review_with_its_conditions() {
    let r = decide(
        json!({"amount": "120000.00"}),
        json!({"credit_limit": "250000.00", "insurance": {"insured_amount": "250000.00"}}),
    );
    assert_eq!(r.outcome, Outcome::Review);
    assert_eq!(codes(&r), ["RISK_SCORE", "LARGE_ORDER"]);
}

#[test]
fn terms_never_exceed_60_days_nor_the_request() {
    let clients = [
        json!({}),
        band_d_client(),
        prospect(),
        json!({"alerts": {"negative": 2}}),
    ];
    for client in clients {
        for asked in [0, 15, 30, 45, 60, 61, 90, 365] {
            let r = decide(
                json!({"amount": "1000.00", "requested_terms_days": asked}),
                client.clone(),
            );
            let terms = r.terms_days.unwrap();
            assert!(
                terms <= 60 && terms <= asked,
                "{asked} -> {terms}: {client}"
            );
            if asked > 60 && r.outcome != Outcome::Declined {
                assert!(codes(&r).contains(&"TERMS_LEGAL_MAX"));
            }
        }
    }
}

#[test]
fn a_zero_amount_request_is_decided_without_error() {
    let r = decide(json!({"amount": "0.00"}), json!({}));
    assert_eq!(r.outcome, Outcome::Approved);
    assert_eq!(r.approved_amount.unwrap().to_string(), "0.00");
}

#[test]
fn amounts_follow_the_account_currency() {
    let r = decide(
        json!({"amount": 1234567}),
        json!({"currency": "JPY", "credit_limit": 5000000,
               "exposure": {"open_invoices": 4000000, "reserved": 0},
               "insurance": {"insured_amount": 5000000}}),
    );
    assert_eq!(r.approved_amount.unwrap().to_string(), "1000000");
    // Thresholds are in the account currency: 1 234 567 JPY is a large order.
    assert_eq!(r.outcome, Outcome::Review);
    assert_eq!(
        codes(&r),
        ["RISK_SCORE", "AMOUNT_CAPPED_TO_AVAILABLE", "LARGE_ORDER"]
    );
}

#[test]
fn reduced_cover_cuts_the_standing_limit() {
    let r = on_event(
        json!({"type": "insurance_cover_changed", "insurer": "Allianz Trade",
               "insured_amount": "30000.00", "valid_until": "2026-12-31"}),
        json!({"insurance": {"insured_amount": "30000.00"}}),
    );
    assert_eq!(r.new_credit_limit, Some(d("30000.00")));
    assert_eq!(codes(&r), ["RISK_SCORE", "LIMIT_CUT_TO_INSURED"]);
}

#[test]
fn insolvency_blocks_the_client() {
    let r = on_event(
        json!({"type": "legal_status_changed", "legal_status": "liquidation"}),
        json!({"legal_status": "liquidation", "overdue": {"amount": "900.00", "max_days_past_due": 75}}),
    );
    assert_eq!(r.client_status, Some(ClientStatus::Blocked));
    assert_eq!(r.band, Some(Band::E));
    assert_eq!(codes(&r), ["RISK_SCORE", "INSOLVENCY_PROCEEDINGS"]);
}

#[test]
fn the_default_client_view_is_what_scoring_calls_band_a() {
    let client = client_view(&json!({})).unwrap();
    assert_eq!(client["risk"]["band"], "A");
    let r = decide(json!({}), json!({}));
    assert_eq!((r.score, r.band), (Some(0), Some(Band::A)));
}
