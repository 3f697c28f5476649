//! Replay: every decision of a realistic book — good, risky, insured, in receivership, new
//! prospects, a policy change half-way — gives exactly its recorded answer when re-run with
//! its recorded policy versions on its recorded input, through the API and the CLI.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::decisions::{ALL, Facts, decide, given, order};
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

const DECISIONS: usize = 320;

/// The clients of the book: (id, limit, facts).
pub(crate) fn book() -> Vec<(&'static str, &'static str, Facts)> {
    vec![
        ("GOOD-1", "400000.00", Facts::good()),
        ("GOOD-2", "200000.00", Facts::good()),
        (
            "INSURED-LOW",
            "400000.00",
            Facts {
                insured: Some("8000.00"),
                ..Facts::good()
            },
        ),
        (
            "UNINSURED",
            "150000.00",
            Facts {
                insured: None,
                invoices_paid: 12,
                external_score: Some(60),
                ..Facts::default()
            },
        ),
        (
            "LATE",
            "300000.00",
            Facts {
                insured: Some("300000.00"),
                invoices_paid: 20,
                paid_late: 8,
                average_days_late: 20,
                days_past_due: 35,
                external_score: Some(45),
                legal_status: None,
            },
        ),
        (
            "RISKY",
            "400000.00",
            Facts {
                insured: Some("400000.00"),
                invoices_paid: 10,
                paid_late: 6,
                average_days_late: 35,
                days_past_due: 65,
                external_score: None,
                legal_status: None,
            },
        ),
        (
            "RECEIVERSHIP",
            "50000.00",
            Facts {
                legal_status: Some("receivership"),
                ..Facts::good()
            },
        ),
        (
            "SAFEGUARD",
            "100000.00",
            Facts {
                legal_status: Some("safeguard"),
                ..Facts::good()
            },
        ),
        (
            "NO-HISTORY",
            "50000.00",
            Facts {
                insured: Some("50000.00"),
                ..Facts::default()
            },
        ),
    ]
}

/// A new deposit version that asks prospects for 25 % instead of 20 %, submitted by alice and
/// activated by bob (four-eyes).
async fn raise_prospect_deposit(app: &TestApp) {
    let number = draft_deposit(app, "DEPOSIT_PROSPECT = 25", "prospects pay 25 %").await;
    let bob = app.token_for("bob", "policies:activate");
    let activated = app
        .post_json(
            &format!("/v1/policies/deposit/versions/{number}/activate"),
            &bob,
            &json!({}),
        )
        .await;
    assert_eq!(activated.status, 200, "{}", activated.text);
}

/// The active deposit version's source, and its cases without those pinning the 20 %
/// prospect deposit (a version that changes it keeps the others).
pub(crate) async fn active_deposit(app: &TestApp) -> (String, Vec<Value>) {
    let current = app.get("/v1/policies/deposit", &app.token(ALL)).await;
    let active = current.body["active_version"].as_i64().unwrap();
    let version = current.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"].as_i64() == Some(active))
        .unwrap()
        .clone();
    let tests: Vec<Value> = version["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|case| {
            let text = case.to_string();
            !text.contains("PROSPECT") && !text.contains("is_prospect")
        })
        .cloned()
        .collect();
    assert!(!tests.is_empty());
    (version["source"].as_str().unwrap().to_owned(), tests)
}

/// A draft of deposit, written by alice, that asks prospects for `percent` % instead of the
/// active version's 20 %; its number.
pub(crate) async fn submit_prospect_deposit(app: &TestApp, percent: u32) -> i64 {
    draft_deposit(
        app,
        &format!("DEPOSIT_PROSPECT = {percent}"),
        &format!("prospects pay {percent} %"),
    )
    .await
}

/// A draft of the active deposit version with `DEPOSIT_PROSPECT = 20` replaced by `change`,
/// submitted by alice; its number.
pub(crate) async fn draft_deposit(app: &TestApp, change: &str, description: &str) -> i64 {
    let token = app.token_for("alice", "policies:read policies:write");
    let (source, tests) = active_deposit(app).await;
    let source = source.replace("DEPOSIT_PROSPECT = 20", change);
    let body = json!({"source": source, "description": description, "tests": tests});
    let created = app
        .post_json("/v1/policies/deposit/versions", &token, &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["version"].as_i64().unwrap()
}

async fn every_decision_replays_identical(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    let clients = book();
    for (id, limit, facts) in book() {
        given(&app, id, limit, facts).await;
    }
    let mut outcomes = BTreeMap::new();
    let mut deposit_versions = BTreeMap::new();
    for i in 0..DECISIONS {
        if i == DECISIONS / 2 {
            raise_prospect_deposit(&app).await;
        }
        // Now and then an order big enough to need a credit manager.
        let amount = match i % 23 {
            7 => "150000.00".to_owned(),
            _ => format!("{}.{:02}", 50 + (i * 733) % 3_000, (i * 37) % 100),
        };
        let terms = [30, 45, 60, 90][i % 4];
        let mut body = if i % 16 == 5 {
            let mut body = order(&format!("r-{i}"), &format!("NEW-{i}"), &amount, terms);
            body["prospect"] = json!({"name": format!("Prospect {i} SAS"), "country": "FR"});
            body
        } else {
            order(
                &format!("r-{i}"),
                clients[i % clients.len()].0,
                &amount,
                terms,
            )
        };
        body["channel"] = json!(["checkout", "erp", "manual"][i % 3]);
        let d = decide(&app, &body).await;
        assert_eq!(d.status, 201, "{}", d.text);
        *outcomes
            .entry(d.body["outcome"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        let deposit = d.body["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "deposit")
            .unwrap()["version"]
            .as_i64()
            .unwrap();
        *deposit_versions.entry(deposit).or_insert(0) += 1;
    }
    for outcome in ["approved", "conditional", "review", "declined"] {
        assert!(
            outcomes.get(outcome) >= Some(&5),
            "few {outcome}: {outcomes:?}"
        );
    }
    assert_eq!(deposit_versions.len(), 2, "{deposit_versions:?}");

    // Through the API, page by page over the decision records.
    let mut replayed = 0;
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/v1/audit/records?kind=decision&limit=100{cursor}"),
                &token,
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        for record in page.body["items"].as_array().unwrap() {
            let seq = record["sequence"].as_i64().unwrap();
            let replay = app
                .post_json(
                    &format!("/v1/audit/records/{seq}/replay"),
                    &token,
                    &json!({}),
                )
                .await;
            assert_eq!(replay.status, 200, "{}", replay.text);
            assert_eq!(
                replay.body["identical"], true,
                "record {seq}: {}",
                replay.text
            );
            assert_eq!(replay.body["original"], replay.body["replayed"]);
            replayed += 1;
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(replayed, DECISIONS);

    // And from the shell, as an auditor would on a copy of the database.
    for args in [&["audit", "replay", "--all"][..], &["audit", "verify"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_encours"))
            .args(args)
            .env("ENCOURS_DATABASE_URL", &app.state.settings.database_url)
            .output()
            .expect("run encours");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + String::from_utf8_lossy(&out.stderr).as_ref();
        assert!(out.status.success(), "{args:?}: {text}");
        if args[1] == "replay" {
            assert!(
                text.contains(&format!(
                    "{DECISIONS} decision(s) replayed, {DECISIONS} identical"
                )),
                "{text}"
            );
        }
    }
}

async fn only_decisions_replay(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    // Record 1 is the shipped policies' first version, not a decision.
    app.post_json("/v1/audit/records/1/replay", &token, &json!({}))
        .await
        .problem(422, "validation_failed");
    app.post_json("/v1/audit/records/999999/replay", &token, &json!({}))
        .await
        .problem(404, "not_found");
    app.post_json("/v1/audit/records/abc/replay", &token, &json!({}))
        .await
        .problem(422, "validation_failed");
    app.post_json(
        "/v1/audit/records/1/replay",
        &app.token("decisions:read"),
        &json!({}),
    )
    .await
    .problem(403, "forbidden");
}

on_both_backends!(every_decision_replays_identical, only_decisions_replay);
