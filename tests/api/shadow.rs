//! Shadow challenger: a stricter deposit draft runs beside the active version on live
//! decisions; the champion alone answers, the report is what a backtest over the same decision
//! records gives, nothing but the shadow's own tables and audit records is written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use encours::service::ServiceError;
use encours::service::audit::Recorded;
use encours::service::challenge::{Comparison, TermsSummary};
use serde_json::{Value, json};

use crate::audit::replay::{book, submit_prospect_deposit};
use crate::decisions::{ALL, decide, given, order};
use crate::on_both_backends;
use crate::support::{Answer, Backend, TestApp};

const DECISIONS: usize = 48;

fn shadow_path(version: i64) -> String {
    format!("/v1/policies/deposit/versions/{version}/shadow")
}

/// Polls the report until it has seen `count` decisions (bounded: the shadow thread compares
/// them within milliseconds; the bound only keeps a broken build from hanging).
async fn report_when_seen(app: &TestApp, version: i64, count: u64) -> Answer {
    let token = app.token("policies:read");
    for _ in 0..600 {
        let report = app.get(&shadow_path(version), &token).await;
        assert_eq!(report.status, 200, "{}", report.text);
        if report.body["seen"].as_u64() >= Some(count) {
            return report;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the shadow of version {version} never saw {count} decisions");
}

/// Order `i` of the day: every fifth from a new prospect, the others over the book.
fn order_number(i: usize, tag: &str) -> Value {
    let clients = book();
    let amount = format!("{}.{:02}", 80 + (i * 733) % 2_500, (i * 37) % 100);
    let terms = [30, 45, 60, 90][i % 4];
    if i % 5 == 2 {
        let mut body = order(
            &format!("{tag}-{i}"),
            &format!("NEW-{tag}-{i}"),
            &amount,
            terms,
        );
        body["prospect"] = json!({"name": format!("Prospect {i} SAS"), "country": "FR"});
        body
    } else {
        order(
            &format!("{tag}-{i}"),
            clients[i % clients.len()].0,
            &amount,
            terms,
        )
    }
}

fn reasons(answer: &Value) -> Vec<&str> {
    answer["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["code"].as_str()).collect())
        .unwrap_or_default()
}

/// The decision records after `after`: (sequence, payload).
async fn decision_records(app: &TestApp, after: i64) -> Vec<(i64, String)> {
    let page = app
        .get(
            "/v1/audit/records?kind=decision&limit=500",
            &app.token("audit:read"),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["sequence"].as_i64().unwrap(), r["payload"].to_string()))
        .filter(|(seq, _)| *seq > after)
        .collect()
}

/// What a backtest computes over these records: each re-run from its snapshot with `version`
/// of deposit in place of the recorded one, compared by the shared `Comparison`.
async fn backtest(app: &TestApp, version: i64, records: Vec<(i64, String)>) -> Comparison {
    let registry = app.state.policies.clone();
    app.store()
        .run(move |conn| {
            let row = encours::store::policies::version(conn, "deposit", version as i32)?
                .ok_or_else(|| ServiceError::Internal("no challenger".into()))?;
            let challenger = registry.stage(&row)?;
            let mut comparison = Comparison::default();
            for (sequence, payload) in &records {
                let rec = Recorded::from_payload(*sequence, payload)?;
                let stages = rec
                    .stages(conn, &registry, Some(&challenger))?
                    .map_err(|_| ServiceError::Internal("missing version".into()))?;
                let (_, terms) = rec.rerun(registry.engine(), &stages)?;
                let recorded =
                    TermsSummary::of_answer(&rec.answer).map_err(ServiceError::Internal)?;
                let replayed = TermsSummary::of(&terms).map_err(ServiceError::Internal)?;
                comparison.add(&recorded, &replayed);
            }
            Ok::<_, ServiceError>(comparison)
        })
        .await
        .expect("backtest")
}

/// Kinds of the audit records after `after`, counted.
async fn kinds_after(app: &TestApp, after: i64) -> BTreeMap<String, usize> {
    let page = app
        .get("/v1/audit/records?limit=500", &app.token("audit:read"))
        .await;
    let mut kinds = BTreeMap::new();
    for r in page.body["items"].as_array().unwrap() {
        if r["sequence"].as_i64().unwrap() > after {
            *kinds
                .entry(r["kind"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    kinds
}

async fn a_stricter_draft_shadows_live_decisions(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (id, limit, facts) in book() {
        given(&app, id, limit, facts).await;
    }
    let draft = submit_prospect_deposit(&app, 25).await;
    let alice = app.token_for("alice", "policies:read policies:write");
    let (head, _) = app.audit_head().await;

    let started = app.post_json(&shadow_path(draft), &alice, &json!({})).await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(started.body["policy"], "deposit");
    assert_eq!(started.body["version"], draft);
    assert_eq!(started.body["sample_rate"], 1.0);
    assert_eq!(started.body["started_by"], "alice");
    assert_eq!(started.body["seen"], 0);
    assert_eq!(started.body["stopped_at"], Value::Null);
    let run = started.body["started_sequence"].as_i64().unwrap();
    assert_eq!(run, head + 1, "the start is the next audit record");
    app.post_json(&shadow_path(draft), &alice, &json!({}))
        .await
        .problem(409, "conflict");

    // The champion answers: prospects pay 20 %.
    let mut answers = Vec::new();
    for i in 0..DECISIONS {
        let d = decide(&app, &order_number(i, "s")).await;
        assert_eq!(d.status, 201, "{}", d.text);
        answers.push((i % 5 == 2, d.body));
    }
    let by_prospect_deposit: BTreeSet<String> = answers
        .iter()
        .filter(|(_, a)| reasons(a).contains(&"DEPOSIT_PROSPECT"))
        .map(|(_, a)| a["decision_id"].as_str().unwrap().to_owned())
        .collect();
    for (prospect, answer) in &answers {
        if reasons(answer).contains(&"DEPOSIT_PROSPECT") {
            assert_eq!(answer["deposit"]["percent"], "20", "{answer}");
        }
        if *prospect && answer["outcome"] != "declined" {
            assert!(
                reasons(answer).contains(&"DEPOSIT_PROSPECT"),
                "a prospect pays the prospect deposit: {answer}"
            );
        }
    }
    assert!(by_prospect_deposit.len() >= 5, "{by_prospect_deposit:?}");

    let report = report_when_seen(&app, draft, DECISIONS as u64).await;
    assert_eq!(report.body["seen"], DECISIONS, "{}", report.text);
    assert_eq!(report.body["skipped"], 0);
    let changes = report.body["changes"].as_array().unwrap();
    let changed: BTreeSet<String> = changes
        .iter()
        .map(|c| c["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        changed, by_prospect_deposit,
        "exactly the prospect deposits"
    );
    for c in changes {
        assert_eq!(c["recorded"]["deposit_percent"], "20", "{c}");
        assert_eq!(c["challenger"]["deposit_percent"], "25", "{c}");
        assert_eq!(c["recorded"]["outcome"], c["challenger"]["outcome"]);
    }
    assert_eq!(report.body["comparison"]["changed"], changed.len());

    // The same comparison a backtest gives over these decision records.
    let records = decision_records(&app, run).await;
    assert_eq!(records.len(), DECISIONS);
    let expected = backtest(&app, draft, records).await;
    assert_eq!(
        report.body["comparison"],
        serde_json::to_value(&expected).unwrap()
    );
    // And the backtest endpoint itself, over the same decisions (all made during the run).
    let backtested = app
        .post_json(
            &format!("/v1/policies/deposit/versions/{draft}/backtest"),
            &alice,
            &json!({}),
        )
        .await;
    assert_eq!(backtested.status, 200, "{}", backtested.text);
    assert_eq!(backtested.body["replayed"], DECISIONS);
    assert_eq!(
        backtested.body["comparison"], report.body["comparison"],
        "a shadow run reports what a backtest of the same traffic reports"
    );

    // Changes page by page.
    let first = app
        .get(&format!("{}?limit=2", shadow_path(draft)), &alice)
        .await;
    assert_eq!(first.body["changes"].as_array().unwrap().len(), 2);
    let next = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("{}?limit=500&cursor={next}", shadow_path(draft)),
            &alice,
        )
        .await;
    assert_eq!(
        second.body["changes"].as_array().unwrap().len(),
        changed.len() - 2
    );
    assert_eq!(second.body["next_cursor"], Value::Null);

    // Stop: the final report, audited; a second stop finds nothing running.
    let stopped = app
        .call("DELETE", &shadow_path(draft), Some(&alice), None)
        .await;
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    assert_eq!(stopped.body["seen"], DECISIONS);
    assert_eq!(stopped.body["stopped_by"], "alice");
    let stop_record = stopped.body["stopped_sequence"].as_i64().unwrap();
    app.call("DELETE", &shadow_path(draft), Some(&alice), None)
        .await
        .problem(404, "not_found");

    // Later decisions are not shadowed: a second run, started after them, sees its own only
    // (the shadow thread takes decisions in order), and the first run's report holds.
    for i in 0..5 {
        let d = decide(&app, &order_number(i, "after")).await;
        assert_eq!(d.status, 201, "{}", d.text);
    }
    let stricter = submit_prospect_deposit(&app, 30).await;
    let second_run = app
        .post_json(&shadow_path(stricter), &alice, &json!({"sample_rate": 1}))
        .await;
    assert_eq!(second_run.status, 201, "{}", second_run.text);
    let d = decide(&app, &order_number(2, "last")).await;
    assert_eq!(d.status, 201, "{}", d.text);
    report_when_seen(&app, stricter, 1).await;
    let held = app.get(&shadow_path(draft), &alice).await;
    assert_eq!(held.body["seen"], DECISIONS);
    assert_eq!(held.body["stopped_sequence"], stop_record);
    assert_eq!(held.body["comparison"], report.body["comparison"]);
    let last = app
        .call("DELETE", &shadow_path(stricter), Some(&alice), None)
        .await;
    assert_eq!(last.status, 200, "{}", last.text);
    assert_eq!(last.body["seen"], 1);

    // Written: the decisions (and prospects) the champion made, and the shadow's own records.
    let prospects = answers.iter().filter(|(p, _)| *p).count() + 2;
    let kinds = kinds_after(&app, head).await;
    let expected_kinds: BTreeMap<String, usize> = [
        ("decision", DECISIONS + 6),
        ("client.created", prospects),
        ("policy.version_created", 1),
        ("policy.shadow_started", 2),
        ("policy.shadow_stopped", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, expected_kinds);
    let listed = app
        .get("/v1/credit-decisions?limit=500", &app.token(ALL))
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        DECISIONS + 6
    );
    let audit = app
        .get(
            &format!("/v1/audit/records/{run}"),
            &app.token("audit:read"),
        )
        .await;
    assert_eq!(audit.body["kind"], "policy.shadow_started");
    assert_eq!(audit.body["actor"], "alice");
    assert_eq!(audit.body["payload"]["version"], draft);
    let verify = app.get("/v1/audit/verify", &app.token("audit:read")).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
}

async fn refusals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let writer = app.token("policies:read policies:write");
    let body = json!({});
    app.post_json(&shadow_path(1), &app.token("policies:read"), &body)
        .await
        .problem(403, "forbidden");
    app.call(
        "DELETE",
        &shadow_path(1),
        Some(&app.token("policies:read")),
        None,
    )
    .await
    .problem(403, "forbidden");
    app.get(&shadow_path(1), &app.token("decisions:read"))
        .await
        .problem(403, "forbidden");
    app.post_json("/v1/policies/nope/versions/1/shadow", &writer, &body)
        .await
        .problem(404, "not_found");
    app.post_json(&shadow_path(99), &writer, &body)
        .await
        .problem(404, "not_found");
    app.get(&shadow_path(1), &writer)
        .await
        .problem(404, "not_found");
    app.call("DELETE", &shadow_path(1), Some(&writer), None)
        .await
        .problem(404, "not_found");
    let event_stage = app
        .post_json("/v1/policies/on_event/versions/1/shadow", &writer, &body)
        .await;
    event_stage.problem(422, "validation_failed");
    assert_eq!(event_stage.fields(), ["name"]);
    for bad in [
        json!({"sample_rate": 0}),
        json!({"sample_rate": 1.5}),
        json!({"sample_rate": -0.1}),
    ] {
        let refused = app.post_json(&shadow_path(1), &writer, &bad).await;
        refused.problem(422, "validation_failed");
        assert_eq!(refused.fields(), ["sample_rate"], "{bad}");
    }
    for bad in [json!({"sample_rate": "half"}), json!({"rate": 0.5})] {
        app.post_json(&shadow_path(1), &writer, &bad)
            .await
            .problem(422, "validation_failed");
    }
    app.get(&format!("{}?limit=0", shadow_path(1)), &writer)
        .await
        .problem(422, "validation_failed");
    // Shadowing the active version itself is allowed and changes nothing; one run at a time.
    let started = app
        .post_json(&shadow_path(1), &writer, &json!({"sample_rate": 0.5}))
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(started.body["sample_rate"], 0.5);
    app.post_json(&shadow_path(1), &writer, &body)
        .await
        .problem(409, "conflict");
}

/// A run started through one server process is shadowed by every process on the database
/// (within the refresh), each writing what it saw, and the report adds them up.
async fn every_process_contributes(backend: Backend) {
    if backend != Backend::Postgres {
        return;
    }
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let Some(b) = a.another_process(|_| {}).await else {
        return;
    };
    for (id, limit, facts) in book() {
        given(&a, id, limit, facts).await;
    }
    let draft = submit_prospect_deposit(&a, 25).await;
    let alice = a.token_for("alice", "policies:read policies:write");
    let started = a.post_json(&shadow_path(draft), &alice, &json!({})).await;
    assert_eq!(started.status, 201, "{}", started.text);
    let run = started.body["started_sequence"].as_i64().unwrap();
    assert_eq!(
        a.state.shadow.active_runs(),
        [run],
        "the starting process at once"
    );
    let mut waited = 0;
    while b.state.shadow.active_runs() != [run] {
        assert!(waited < 200, "the other process never learnt of the run");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let mut changed = BTreeSet::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let d = decide(app, &order_number(i, "two")).await;
        assert_eq!(d.status, 201, "{}", d.text);
        if reasons(&d.body).contains(&"DEPOSIT_PROSPECT") {
            changed.insert(d.body["decision_id"].as_str().unwrap().to_owned());
        }
    }
    let report = report_when_seen(&b, draft, 20).await;
    assert_eq!(report.body["seen"], 20, "{}", report.text);
    let listed: BTreeSet<String> = report.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, changed);
    let stopped = b
        .call("DELETE", &shadow_path(draft), Some(&alice), None)
        .await;
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    assert_eq!(b.state.shadow.active_runs(), Vec::<i64>::new());
}

on_both_backends!(
    a_stricter_draft_shadows_live_decisions,
    refusals,
    every_process_contributes
);
