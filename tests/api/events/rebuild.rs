//! The rebuild property: for random event histories, sent in random batches (with resends
//! and conflicting resends), the incrementally kept state equals the replay of the log.

use chrono::Utc;
use encours::domain::{ClientId, ClientProfile, ClientStatus, Country, Currency};
use encours::service::events::{EventStatus, ingest_at};
use encours::service::rebuild::rebuild_client;
use encours::store::clients;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp, check_on_store};

#[derive(Clone, Debug)]
enum Op {
    Issue {
        inv: u8,
        minor: i64,
        issued: i64,
        terms: i64,
    },
    Pay {
        inv: u8,
        minor: i64,
        received: i64,
    },
    Credit {
        inv: u8,
        minor: i64,
    },
    Dun {
        inv: u8,
        level: u8,
    },
    Cover {
        minor: i64,
        occurred: i64,
        valid: Option<i64>,
    },
    Score {
        score: u8,
        as_of: i64,
    },
    Alert {
        negative: bool,
        occurred: i64,
    },
    Legal {
        status: u8,
        occurred: i64,
    },
    /// Send an earlier event again, as it was.
    Resend(usize),
    /// Send an earlier event again with another body (rejected).
    Conflict(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let inv = 0u8..5;
    let minor = 1i64..300_000;
    let past = -200i64..=0;
    prop_oneof![
        4 => (inv.clone(), minor.clone(), past.clone(), 0i64..90).prop_map(|(inv, minor, issued, terms)| Op::Issue { inv, minor, issued, terms }),
        4 => (inv.clone(), minor.clone(), past.clone()).prop_map(|(inv, minor, received)| Op::Pay { inv, minor, received }),
        2 => (inv.clone(), minor.clone()).prop_map(|(inv, minor)| Op::Credit { inv, minor }),
        1 => (inv, 1u8..=9).prop_map(|(inv, level)| Op::Dun { inv, level }),
        2 => (0i64..400_000, past.clone(), proptest::option::of(-30i64..60)).prop_map(|(minor, occurred, valid)| Op::Cover { minor, occurred, valid }),
        1 => (0u8..=100, past.clone()).prop_map(|(score, as_of)| Op::Score { score, as_of }),
        1 => (any::<bool>(), past.clone()).prop_map(|(negative, occurred)| Op::Alert { negative, occurred }),
        1 => (0u8..4, past).prop_map(|(status, occurred)| Op::Legal { status, occurred }),
        1 => any::<usize>().prop_map(Op::Resend),
        1 => any::<usize>().prop_map(Op::Conflict),
    ]
}

const LEGAL: [&str; 4] = ["none", "safeguard", "receivership", "liquidation"];

fn amount(minor: i64, digits: u32) -> String {
    rust_decimal::Decimal::new(minor, digits).to_string()
}

/// The events of a case, in the order sent.
fn events(case: usize, client: &str, digits: u32, ops: &[Op]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let id = format!("{case}-{n}");
        let inv_id = |i: &u8| format!("F{i}");
        let e = match op {
            Op::Issue {
                inv,
                minor,
                issued,
                terms,
            } => invoice(
                &id,
                client,
                &inv_id(inv),
                &amount(*minor, digits),
                *issued,
                issued + terms,
            ),
            Op::Pay {
                inv,
                minor,
                received,
            } => payment(
                &id,
                client,
                &inv_id(inv),
                &amount(*minor, digits),
                *received,
            ),
            Op::Credit { inv, minor } => ev(
                &id,
                client,
                "credit_note_issued",
                json!({"invoice_id": inv_id(inv), "amount": amount(*minor, digits)}),
            ),
            Op::Dun { inv, level } => ev(
                &id,
                client,
                "dunning_sent",
                json!({"invoice_id": inv_id(inv), "level": level}),
            ),
            Op::Cover {
                minor,
                occurred,
                valid,
            } => {
                let mut e = ev(
                    &id,
                    client,
                    "insurance_cover_changed",
                    json!({
                    "insurer": "Coface", "insured_amount": amount(*minor, digits), "occurred_at": at(*occurred)}),
                );
                if let Some(v) = valid {
                    e["valid_until"] = json!(day(*v));
                }
                e
            }
            Op::Score { score, as_of } => ev(
                &id,
                client,
                "external_score_updated",
                json!({"provider": "P", "score": score, "as_of": day(*as_of)}),
            ),
            Op::Alert { negative, occurred } => ev(
                &id,
                client,
                "sales_alert",
                json!({
                "sentiment": if *negative { "negative" } else { "positive" }, "note": "n", "occurred_at": at(*occurred)}),
            ),
            Op::Legal { status, occurred } => ev(
                &id,
                client,
                "legal_status_changed",
                json!({
                "legal_status": LEGAL[usize::from(*status)], "occurred_at": at(*occurred)}),
            ),
            Op::Resend(k) if !out.is_empty() => out[k % out.len()].clone(),
            Op::Conflict(k) if !out.is_empty() => {
                let mut e = out[k % out.len()].clone();
                e["occurred_at"] = json!(at(-300));
                e
            }
            Op::Resend(_) | Op::Conflict(_) => continue,
        };
        out.push(e);
    }
    out
}

async fn rebuild_equals_incremental(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let strategy = || {
        (
            prop::collection::vec(op(), 1..40),
            prop::collection::vec(1usize..8, 1..40),
            0usize..3,
        )
    };
    check_on_store(
        &app,
        24,
        strategy,
        |state, conn, case, (ops, sizes, currency)| {
            let currency = Currency::parse(["EUR", "JPY", "KWD"][currency]).unwrap();
            let id = ClientId::parse(&format!("P-{case}")).unwrap();
            let profile = ClientProfile {
                name: "Prop SA".into(),
                registration_number: None,
                country: Country::parse("FR").unwrap(),
                sector: None,
                currency,
                credit_limit: encours::domain::Money::from_minor(50_000_000, currency),
                status: None,
            };
            clients::insert(conn, &id, &profile, ClientStatus::Active, false, Utc::now()).unwrap();
            let all = events(case, id.as_str(), currency.minor_digits(), &ops);
            let (mut sent, mut accepted) = (0, 0);
            for size in sizes.iter().cycle() {
                if sent >= all.len() {
                    break;
                }
                let batch = &all[sent..(sent + size).min(all.len())];
                sent += batch.len();
                let done = ingest_at(conn, &state.policies, batch, "prop", Utc::now())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                accepted += done
                    .results
                    .iter()
                    .filter(|r| matches!(r.status, EventStatus::Accepted))
                    .count();
            }
            let rebuilt = rebuild_client(conn, &id, false, Utc::now())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(rebuilt.events, accepted);
            prop_assert!(rebuilt.differences.is_empty(), "{:?}", rebuilt.differences);
            Ok(())
        },
    )
    .await;
}

on_both_backends!(rebuild_equals_incremental);
