//! End-to-end tests through the public API: effects, composition, sandbox.

mod compiled;
mod default_policies;
mod effects;
mod helpers;
mod pipeline;
mod sandbox;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{Baseline, Limits, PipelineResult, PolicyEngine, PolicyInput, Stage};

pub(super) fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub(super) fn client_json() -> Value {
    json!({
        "client_id": "C-1", "name": "Dupont SA", "currency": "EUR", "status": "active",
        "is_prospect": false, "credit_limit": "50000.00",
        "exposure": {"open_invoices": "30000.00", "reserved": "2000.00", "total": "32000.00"},
        "available_credit": "18000.00",
        "overdue": {"amount": "0.00", "max_days_past_due": 0},
        "payment_behaviour": {"invoices_paid": 40, "paid_late": 4, "average_days_late": 3},
        "insurance": {"insurer": "Allianz Trade", "insured_amount": "40000.00", "valid_until": "2027-01-01"},
        "external_score": {"provider": "X", "score": 72, "as_of": "2026-01-01"},
        "alerts": {"negative": 0, "positive": 1},
        "legal_status": "none",
        "risk": {"score": 35, "band": "B", "factors": []},
    })
}

/// A credit request for `amount` EUR on 60-day terms.
pub(super) fn request(amount: &str) -> PolicyInput {
    let body = json!({"request_id": "R-1", "client_id": "C-1", "amount": amount,
                      "currency": "EUR", "requested_terms_days": 60, "channel": "erp"});
    let baseline = Baseline::credit_request(d(amount), 60, Some(d("50000.00")), 2);
    PolicyInput::credit_request(body, client_json(), baseline).unwrap()
}

pub(super) fn event(body: Value) -> PolicyInput {
    PolicyInput::client_event(
        body,
        client_json(),
        Baseline::client_event(Some(d("50000.00")), 2),
    )
    .unwrap()
}

/// Stages named `s1`, `s2`… at versions 1, 2…
pub(super) fn stages(engine: &PolicyEngine, sources: &[&str]) -> Vec<Stage> {
    sources
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let policy = engine
                .compile(src)
                .unwrap_or_else(|e| panic!("stage {i}: {e}\n{src}"));
            Stage::new(format!("s{}", i + 1), u32::try_from(i + 1).unwrap(), policy)
        })
        .collect()
}

pub(super) fn run_with(limits: Limits, input: &PolicyInput, sources: &[&str]) -> PipelineResult {
    let engine = PolicyEngine::new(limits);
    engine.run(&stages(&engine, sources), input)
}

pub(super) fn run(input: &PolicyInput, sources: &[&str]) -> PipelineResult {
    run_with(Limits::default(), input, sources)
}

/// The error message of the failed stage, or a panic if none failed.
pub(super) fn failure(result: &PipelineResult) -> &super::StageError {
    result
        .failed_stage()
        .and_then(|t| t.error.as_ref())
        .unwrap_or_else(|| panic!("expected a failed stage: {result:#?}"))
}
