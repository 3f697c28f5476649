use serde_json::json;

use super::super::{Action, Band, ClientStatus, Factor, Outcome, POLICY_ERROR, RISK_SCORE};
use super::{d, event, failure, request, run};

#[test]
fn set_score_records_score_band_factors_and_a_reason() {
    let r = run(
        &request("1000.00"),
        &[
            r#"set_score(72, "D", [#{code: "ALERTS", points: 0}, #{code: "DAYS_PAST_DUE", points: 30}, #{code: "SCORE_STRONG", points: -5}]);"#,
        ],
    );
    assert_eq!((r.score, r.band), (Some(72), Some(Band::D)));
    assert_eq!(
        r.factors[1],
        Factor {
            code: "DAYS_PAST_DUE".into(),
            points: 30
        }
    );
    assert_eq!(r.reasons[0].code, RISK_SCORE);
    assert_eq!(
        r.reasons[0].message, "risk score 72, band D: DAYS_PAST_DUE +30, SCORE_STRONG -5",
        "factors of 0 points are not listed"
    );
    assert_eq!(r.outcome, Outcome::Approved);
}

#[test]
fn each_credit_request_effect_is_recorded_with_policy_and_version() {
    let r = run(
        &request("10000.00"),
        &[
            "note(\"START\", \"first stage\");",
            r#"set_limit(40000, "INSURED", "limit capped at the insured amount");
               cap_amount(8000.5, "EXPOSURE", "cut to what is available");
               require_deposit(30, "DEPOSIT_D", "band D deposit");
               limit_terms(15, "TERMS_D", "band D terms");"#,
        ],
    );
    let actions: Vec<_> = r.trace[1]
        .effects
        .iter()
        .map(|e| e.action.clone())
        .collect();
    assert_eq!(
        actions,
        vec![
            Action::SetLimit {
                amount: d("40000.00")
            },
            Action::CapAmount {
                amount: d("8000.50")
            },
            Action::RequireDeposit { percent: d("30") },
            Action::LimitTerms { days: 15 },
        ]
    );
    let e = &r.trace[1].effects[1];
    assert_eq!((e.policy.as_str(), e.policy_version), ("s2", 2));
    assert_eq!(e.code, "EXPOSURE");
    assert_eq!(e.message, "cut to what is available");
    let codes: Vec<_> = r
        .reasons
        .iter()
        .map(|x| (x.code.as_str(), x.policy.as_str(), x.policy_version))
        .collect();
    assert_eq!(
        codes,
        [
            ("START", "s1", 1),
            ("INSURED", "s2", 2),
            ("EXPOSURE", "s2", 2),
            ("DEPOSIT_D", "s2", 2),
            ("TERMS_D", "s2", 2)
        ]
    );
    assert_eq!(r.limit.unwrap().to_string(), "40000.00");
    assert_eq!(r.approved_amount.unwrap().to_string(), "8000.50");
    assert_eq!(r.deposit_amount.unwrap().to_string(), "2400.15");
    assert_eq!(r.terms_days, Some(15));
    assert_eq!(r.outcome, Outcome::Conditional);
}

#[test]
fn refer_decline_and_note() {
    let r = run(&request("100.00"), &["note(\"INFO\", \"fyi\");"]);
    assert_eq!(r.outcome, Outcome::Approved);
    let r = run(
        &request("100.00"),
        &["refer(\"BIG\", \"above threshold\");"],
    );
    assert_eq!(r.outcome, Outcome::Review);
    let r = run(
        &request("100.00"),
        &["decline(\"INSOLVENCY\", \"receivership\");"],
    );
    assert_eq!(r.outcome, Outcome::Declined);
    assert_eq!(r.reasons[0].message, "receivership");
}

#[test]
fn client_event_effects() {
    let input = event(json!({"type": "insurance_cover_changed", "insured_amount": "20000.00"}));
    let r = run(
        &input,
        &[
            r#"if event.type == "insurance_cover_changed" && event.insured_amount < client.credit_limit {
                set_credit_limit(event.insured_amount, "COVER_REDUCED", "limit cut to cover");
             }
             block_client("INSOLVENCY", "blocked");
             unblock_client("CLEARED", "unblocked again");"#,
        ],
    );
    assert_eq!(r.new_credit_limit.unwrap().to_string(), "20000.00");
    assert_eq!(r.client_status, Some(ClientStatus::Active));
    assert_eq!(r.reasons.len(), 3);
    assert_eq!(r.outcome, Outcome::Approved);
    assert_eq!(r.approved_amount, None);
}

#[test]
fn effects_are_confined_to_their_trigger() {
    let r = run(
        &event(json!({"type": "x"})),
        &["cap_amount(1, \"X\", \"y\");"],
    );
    assert!(
        failure(&r)
            .message
            .contains("cap_amount is only available in credit_request policies")
    );
    let r = run(&request("1.00"), &["block_client(\"X\", \"y\");"]);
    assert!(
        failure(&r)
            .message
            .contains("only available in client_event")
    );
}

#[test]
fn invalid_arguments_are_policy_errors() {
    let cases = [
        ("cap_amount(-1, \"X\", \"m\")", "must not be negative"),
        ("set_limit(-0.01, \"X\", \"m\")", "must not be negative"),
        ("cap_amount(10.005, \"X\", \"m\")", "more than 2 decimals"),
        ("cap_amount(\"10\", \"X\", \"m\")", "must be a number"),
        ("require_deposit(101, \"X\", \"m\")", "between 0 and 100"),
        ("require_deposit(-5, \"X\", \"m\")", "between 0 and 100"),
        ("limit_terms(-1, \"X\", \"m\")", "days must be an integer"),
        ("limit_terms(15.5, \"X\", \"m\")", "days must be an integer"),
        ("refer(\"\", \"m\")", "code must be"),
        ("refer(\"lower_case\", \"m\")", "code must be"),
        ("refer(42, \"m\")", "code must be a string"),
        ("decline(\"POLICY_ERROR\", \"m\")", "reserved"),
        ("note(\"X\", \"   \")", "message must not be empty"),
        ("set_score(101, \"A\")", "0..=100"),
        ("set_score(50, \"F\")", "band must be one of"),
        (
            "set_score(50, \"C\", [#{code: \"X\"}])",
            "points must be an integer",
        ),
        ("set_score(50, \"C\", 3)", "factors must be an array"),
    ];
    for (script, expected) in cases {
        let r = run(&request("100.00"), &[script]);
        let err = failure(&r);
        assert!(err.message.contains(expected), "{script}: {err:?}");
        assert_eq!(err.line, Some(1), "{script}: {err:?}");
        assert_eq!(r.outcome, Outcome::Review, "{script}");
        assert_eq!(r.reasons.last().unwrap().code, POLICY_ERROR);
    }
}

#[test]
fn a_stage_may_not_record_unbounded_effects() {
    let r = run(
        &request("1.00"),
        &["for i in 0..100000 { note(\"SPAM\", \"again\"); }"],
    );
    assert!(
        failure(&r).message.contains("at most 256 effects"),
        "{r:#?}"
    );
    assert_eq!(r.trace[0].effects.len(), 256);
}
