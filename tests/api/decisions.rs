//! Credit decisions: the rules a credit manager expects, idempotency, reservations that never
//! over-commit (also across two server processes on one PostgreSQL), and manual review.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, TestApp, client_body};

pub(crate) const ALL: &str = "clients:read clients:write decisions:read decisions:write reviews:write audit:read policies:read";

/// The facts about a client that policies read, set straight in storage (the events API
/// is what sets them in production).
#[derive(Default)]
pub(crate) struct Facts {
    pub insured: Option<&'static str>,
    pub invoices_paid: i64,
    pub paid_late: i64,
    pub average_days_late: i64,
    pub days_past_due: i64,
    pub external_score: Option<i64>,
    pub legal_status: Option<&'static str>,
}

impl Facts {
    pub fn good() -> Self {
        Self {
            insured: Some("50000.00"),
            invoices_paid: 40,
            external_score: Some(85),
            ..Self::default()
        }
    }
}

pub(crate) async fn given(app: &TestApp, client: &str, limit: &str, facts: Facts) {
    let token = app.token(ALL);
    let created = app
        .put_json(
            &format!("/v1/clients/{client}"),
            &token,
            &client_body("EUR", limit),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.text);
    let mut sets = vec![
        format!("invoices_paid = {}", facts.invoices_paid),
        format!("paid_late = {}", facts.paid_late),
        format!(
            "total_days_late = {}",
            facts.paid_late * facts.average_days_late
        ),
    ];
    if let Some(insured) = facts.insured {
        let minor = insured.replace('.', "");
        sets.push(format!(
            "insurer = 'Allianz Trade', insured_minor = {minor}"
        ));
    }
    if let Some(score) = facts.external_score {
        sets.push(format!(
            "score_provider = 'Ellisphere', external_score = {score}, external_score_as_of = '2026-11-01'"
        ));
    }
    if let Some(status) = facts.legal_status {
        sets.push(format!("legal_status = '{status}'"));
    }
    app.sql(&format!(
        "UPDATE clients SET {} WHERE client_id = '{client}'",
        sets.join(", ")
    ))
    .await
    .unwrap();
    if facts.days_past_due > 0 {
        let today = chrono::Utc::now().date_naive();
        let due = today - chrono::Duration::days(facts.days_past_due);
        let issued = due - chrono::Duration::days(30);
        let batch = json!({"events": [{
            "event_id": format!("{client}-overdue"), "client_id": client, "type": "invoice_issued",
            "occurred_at": format!("{issued}T09:00:00Z"), "invoice_id": format!("{client}-INV-1"),
            "amount": "1000.00", "issued_on": issued.to_string(), "due_on": due.to_string()
        }]});
        let answer = app
            .post_json("/v1/events", &app.token("events:write"), &batch)
            .await;
        assert_eq!(
            answer.body["results"][0]["status"], "accepted",
            "{}",
            answer.text
        );
    }
}

pub(crate) fn order(request_id: &str, client: &str, amount: &str, terms: i64) -> Value {
    json!({
        "request_id": request_id, "client_id": client, "amount": amount, "currency": "EUR",
        "requested_terms_days": terms, "channel": "checkout", "order_ref": "SO-1"
    })
}

pub(crate) async fn decide(app: &TestApp, body: &Value) -> crate::support::Answer {
    app.post_json("/v1/credit-decisions", &app.token(ALL), body)
        .await
}

async fn good_client_approved_reserved_and_idempotent(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    given(&app, "C-1", "50000.00", Facts::good()).await;
    let first = decide(&app, &order("r-1", "C-1", "1200.50", 30)).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let d = &first.body;
    assert_eq!(d["outcome"], "approved", "{}", first.text);
    assert_eq!(d["approved_amount"], "1200.50");
    assert_eq!(d["requested_amount"], "1200.50");
    assert_eq!(d["terms_days"], 30);
    assert!(d["deposit"].is_null());
    assert_eq!(d["credit_limit"], "50000.00");
    assert_eq!(d["available_credit_after"], "48799.50");
    assert_eq!(d["policies"].as_array().unwrap().len(), 7);
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["policy"].is_string() && r["policy_version"].is_number())
    );
    assert!(d["expires_at"].is_string());
    let seq = d["audit"]["sequence"].as_i64().unwrap();

    let client = app.get("/v1/clients/C-1", &token).await;
    assert_eq!(client.body["exposure"]["reserved"], "1200.50");
    assert_eq!(client.body["available_credit"], "48799.50");

    let record = app.get(&format!("/v1/audit/records/{seq}"), &token).await;
    assert_eq!(record.body["kind"], "decision");
    assert_eq!(record.body["payload"]["decision_id"], d["decision_id"]);
    assert_eq!(record.body["payload"]["client"]["credit_limit"], "50000.00");
    assert_eq!(record.body["payload"]["policies"], d["policies"]);
    assert_eq!(record.body["hash"], d["audit"]["hash"]);

    let again = decide(&app, &order("r-1", "C-1", "1200.50", 30)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "a retry gets the first answer");
    let reused = decide(&app, &order("r-1", "C-1", "999.00", 30)).await;
    reused.problem(409, "idempotency_conflict");
    assert_eq!(
        app.get("/v1/clients/C-1", &token).await.body["exposure"]["reserved"],
        "1200.50"
    );

    let read = app
        .get(
            &format!(
                "/v1/credit-decisions/{}",
                d["decision_id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["decision_id"], d["decision_id"]);
    assert!(read.body["resolved_by"].is_null());
    let listed = app
        .get(
            "/v1/credit-decisions?client_id=C-1&outcome=approved",
            &token,
        )
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/v1/audit/verify", &token).await.body["ok"], true);
}

async fn rules_a_credit_manager_expects(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Above the insured room: cut to it, or referred.
    given(
        &app,
        "INS",
        "50000.00",
        Facts {
            insured: Some("10000.00"),
            ..Facts::good()
        },
    )
    .await;
    let cut = decide(&app, &order("r-ins", "INS", "15000.00", 30)).await;
    assert_eq!(cut.status, 201, "{}", cut.text);
    match cut.body["outcome"].as_str().unwrap() {
        "conditional" => assert_eq!(cut.body["approved_amount"], "10000.00"),
        "review" => assert_eq!(cut.body["approved_amount"], "0.00"),
        other => panic!("unexpected {other}: {}", cut.text),
    }
    // Receivership: declined with 0.00.
    given(
        &app,
        "RCV",
        "50000.00",
        Facts {
            legal_status: Some("receivership"),
            ..Facts::good()
        },
    )
    .await;
    let declined = decide(&app, &order("r-rcv", "RCV", "100.00", 30)).await;
    assert_eq!(declined.body["outcome"], "declined", "{}", declined.text);
    assert_eq!(declined.body["approved_amount"], "0.00");
    assert!(declined.body["expires_at"].is_null());
    // Band D/E: a deposit of at least 30 % and at most 15 days, or review.
    let risky = Facts {
        insured: Some("50000.00"),
        invoices_paid: 10,
        paid_late: 6,
        average_days_late: 35,
        days_past_due: 65,
        external_score: None,
        legal_status: None,
    };
    given(&app, "RISK", "50000.00", risky).await;
    let d = decide(&app, &order("r-risk", "RISK", "2000.00", 45)).await;
    assert_eq!(d.status, 201, "{}", d.text);
    assert!(
        matches!(d.body["risk"]["band"].as_str(), Some("D" | "E")),
        "{}",
        d.text
    );
    match d.body["outcome"].as_str().unwrap() {
        "conditional" => {
            let percent: f64 = d.body["deposit"]["percent"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(percent >= 30.0, "{}", d.text);
            assert!(d.body["terms_days"].as_u64().unwrap() <= 15, "{}", d.text);
        }
        "review" => {}
        other => panic!("band D/E got {other}: {}", d.text),
    }
    // Terms never above 60 days.
    given(&app, "LONG", "50000.00", Facts::good()).await;
    let long = decide(&app, &order("r-long", "LONG", "100.00", 120)).await;
    assert!(
        long.body["terms_days"].as_u64().unwrap() <= 60,
        "{}",
        long.text
    );
    // A currency other than the client's.
    let mut usd = order("r-usd", "LONG", "100.00", 30);
    usd["currency"] = json!("USD");
    decide(&app, &usd).await.problem(422, "currency_mismatch");
    // An unknown client without a prospect block.
    decide(&app, &order("r-nope", "NOPE", "100.00", 30))
        .await
        .problem(404, "unknown_client");
}

async fn prospects_are_created_and_pay_a_deposit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    let mut body = order("r-p", "NEW-1", "1000.00", 30);
    body["prospect"] =
        json!({"name": "Nouvelle Boulangerie SARL", "country": "FR", "sector": "C10.71"});
    let d = decide(&app, &body).await;
    assert_eq!(d.status, 201, "{}", d.text);
    assert!(
        d.body["deposit"]["percent"].is_string(),
        "a prospect pays a deposit: {}",
        d.text
    );
    let client = app.get("/v1/clients/NEW-1", &token).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.body["is_prospect"], true);
    assert_eq!(
        client.body["exposure"]["reserved"],
        d.body["approved_amount"]
    );
    assert_eq!(
        client.body["credit_limit"], d.body["credit_limit"],
        "the opening limit is kept"
    );
    assert!(d.body["risk"]["band"].is_string(), "{}", d.text);
    assert_eq!(
        client.body["risk"]["band"], d.body["risk"]["band"],
        "the risk the decision scored is kept: {}",
        client.text
    );
    assert_eq!(client.body["risk"]["score"], d.body["risk"]["score"]);
}

async fn input_errors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    given(&app, "C-1", "5000.00", Facts::good()).await;
    for (patch, field) in [
        (json!({"amount": "-1"}), "amount"),
        (json!({"amount": "0"}), "amount"),
        (json!({"amount": "1.001"}), "amount"),
        (json!({"requested_terms_days": -1}), "requested_terms_days"),
        (json!({"requested_terms_days": 366}), "requested_terms_days"),
        (json!({"channel": "fax"}), "channel"),
        (json!({"request_id": ""}), "request_id"),
        (json!({"client_id": "a b"}), "client_id"),
        (json!({"extra": true}), "extra"),
    ] {
        let mut body = order("r-x", "C-1", "10.00", 30);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = decide(&app, &body).await;
        answer.problem(422, "validation_failed");
        assert!(
            answer.fields().iter().any(|f| f == field),
            "{field}: {}",
            answer.text
        );
    }
    let token = app.token(ALL);
    app.get("/v1/credit-decisions/not-a-uuid", &token)
        .await
        .problem(422, "validation_failed");
    app.get(
        &format!("/v1/credit-decisions/{}", uuid::Uuid::new_v4()),
        &token,
    )
    .await
    .problem(404, "not_found");
    let nothing = app.get("/v1/credit-decisions", &token).await;
    assert_eq!(nothing.body["items"], json!([]));
}

/// Fires `n` orders of `amount` at `apps` in parallel and returns the answers.
async fn burst(
    apps: &[&TestApp],
    client: &str,
    n: usize,
    amount: &str,
) -> Vec<crate::support::Answer> {
    let calls = (0..n).map(|i| {
        let app = apps[i % apps.len()];
        let body = order(&format!("burst-{i}"), client, amount, 30);
        async move { decide(app, &body).await }
    });
    futures_util::future::join_all(calls).await
}

fn approved_total<'a>(
    answers: impl IntoIterator<Item = &'a crate::support::Answer>,
) -> rust_decimal::Decimal {
    answers
        .into_iter()
        .map(|a| {
            assert_eq!(a.status, 201, "{}", a.text);
            a.body["approved_amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum()
}

/// The credit the client's reservations hold, as its exposure says.
async fn reserved(app: &TestApp, client: &str) -> rust_decimal::Decimal {
    let answer = app
        .get(&format!("/v1/clients/{client}"), &app.token(ALL))
        .await;
    answer.body["exposure"]["reserved"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn parallel_orders_never_over_commit(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.pool_size = 8).await else {
        return;
    };
    given(
        &app,
        "C-1",
        "10000.00",
        Facts {
            insured: Some("10000.00"),
            ..Facts::good()
        },
    )
    .await;
    // Bad requests in the same burst fail alone: group commit undoes only their own writes.
    let wrong_currency = (0..4).map(|i| {
        let mut body = order(&format!("usd-{i}"), "C-1", "700.00", 30);
        body["currency"] = json!("USD");
        let app = &app;
        async move { decide(app, &body).await }
    });
    let (answers, refused) = futures_util::future::join(
        burst(&[&app], "C-1", 24, "700.00"),
        futures_util::future::join_all(wrong_currency),
    )
    .await;
    for r in &refused {
        r.problem(422, "currency_mismatch");
    }
    let total = approved_total(&answers);
    assert!(total <= "10000.00".parse().unwrap(), "reserved {total}");
    assert!(
        total >= "9800.00".parse().unwrap(),
        "the room is used, not wasted: {total}"
    );
    assert_eq!(reserved(&app, "C-1").await, total);
    assert_eq!(
        app.get("/v1/audit/verify", &app.token(ALL)).await.body["ok"],
        true
    );
}

/// A request_id sent twice at once with different amounts: when both reach the decision writer
/// in one batch, the second fails there (idempotency conflict) and undoes nothing of the others:
/// every other order of the batch is decided and reserved once, and the chain stays whole.
async fn a_decision_failing_in_the_writer_fails_alone(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.pool_size = 8).await else {
        return;
    };
    given(&app, "C-1", "1000000.00", Facts::good()).await;
    let calls = (0..32).map(|i| {
        // Pairs share a request_id and differ in amount; the rest are ordinary orders.
        let (id, amount) = if i < 16 {
            (
                format!("twice-{}", i / 2),
                if i % 2 == 0 { "100.00" } else { "200.00" },
            )
        } else {
            (format!("once-{i}"), "100.00")
        };
        let body = order(&id, "C-1", amount, 30);
        let app = &app;
        async move { decide(app, &body).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for pair in answers[..16].chunks(2) {
        let mut statuses: Vec<u16> = pair.iter().map(|a| a.status.as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{} / {}", pair[0].text, pair[1].text);
    }
    let decided: Vec<_> = answers.iter().filter(|a| a.status == 201).collect();
    assert_eq!(decided.len(), 8 + 16);
    let total = approved_total(decided.iter().copied());
    assert_eq!(reserved(&app, "C-1").await, total);
    let token = app.token(ALL);
    let listed = app
        .get("/v1/credit-decisions?client_id=C-1&limit=100", &token)
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        decided.len(),
        "{}",
        listed.text
    );
    assert_eq!(app.get("/v1/audit/verify", &token).await.body["ok"], true);
}

async fn two_processes_on_one_postgres_never_over_commit(backend: Backend) {
    if backend != Backend::Postgres {
        return;
    }
    let Some(a) = TestApp::spawn_with(backend, |s| s.pool_size = 6).await else {
        return;
    };
    let Some(b) = a.another_process(|s| s.pool_size = 6).await else {
        return;
    };
    given(
        &a,
        "C-1",
        "10000.00",
        Facts {
            insured: Some("10000.00"),
            ..Facts::good()
        },
    )
    .await;
    let answers = burst(&[&a, &b], "C-1", 30, "700.00").await;
    let total = approved_total(&answers);
    assert!(total <= "10000.00".parse().unwrap(), "reserved {total}");
    assert_eq!(reserved(&b, "C-1").await, total);
    let verify = a.get("/v1/audit/verify", &a.token(ALL)).await;
    assert_eq!(
        verify.body["ok"], true,
        "one gap-free chain: {}",
        verify.text
    );
}

async fn reviews_are_resolved_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let manager = app.token_for("credit-manager", ALL);
    given(
        &app,
        "BIG",
        "500000.00",
        Facts {
            insured: Some("500000.00"),
            ..Facts::good()
        },
    )
    .await;
    let referred = decide(&app, &order("r-big", "BIG", "150000.00", 30)).await;
    assert_eq!(referred.body["outcome"], "review", "{}", referred.text);
    assert_eq!(referred.body["approved_amount"], "0.00");
    assert_eq!(
        app.get("/v1/clients/BIG", &manager).await.body["exposure"]["reserved"],
        "0.00"
    );
    let id = referred.body["decision_id"].as_str().unwrap().to_owned();
    let queue = app
        .get(
            "/v1/credit-decisions?outcome=review&resolved=false",
            &manager,
        )
        .await;
    assert_eq!(queue.body["items"][0]["decision_id"], id.as_str());

    let path = format!("/v1/credit-decisions/{id}/resolution");
    let writer_only = app.token("decisions:write");
    app.post_json(
        &path,
        &writer_only,
        &json!({"outcome": "approved", "comment": "ok"}),
    )
    .await
    .problem(403, "forbidden");
    let resolution = json!({"outcome": "conditional", "approved_amount": "120000.00",
        "deposit_percent": "20", "terms_days": 30, "comment": "Known client, large seasonal order"});
    let resolved = app.post_json(&path, &manager, &resolution).await;
    assert_eq!(resolved.status, 201, "{}", resolved.text);
    assert_eq!(resolved.body["resolves"], id.as_str());
    assert_eq!(resolved.body["decided_by"], "credit-manager");
    assert_eq!(resolved.body["approved_amount"], "120000.00");
    assert_eq!(resolved.body["deposit"]["amount"], "24000.00");
    assert_eq!(
        app.get("/v1/clients/BIG", &manager).await.body["exposure"]["reserved"],
        "120000.00"
    );
    let original = app
        .get(&format!("/v1/credit-decisions/{id}"), &manager)
        .await;
    assert_eq!(
        original.body["outcome"], "review",
        "the original is never edited"
    );
    assert_eq!(original.body["resolved_by"], resolved.body["decision_id"]);
    app.post_json(&path, &manager, &resolution)
        .await
        .problem(409, "review_already_resolved");
    let queue = app
        .get(
            "/v1/credit-decisions?outcome=review&resolved=false",
            &manager,
        )
        .await;
    assert_eq!(queue.body["items"], json!([]));
    let record = app
        .get(
            &format!("/v1/audit/records/{}", resolved.body["audit"]["sequence"]),
            &manager,
        )
        .await;
    assert_eq!(record.body["kind"], "decision.resolution");
    assert_eq!(record.body["actor"], "credit-manager");

    // Approving when the room is gone.
    let second = decide(&app, &order("r-big-2", "BIG", "400000.00", 30)).await;
    assert_eq!(second.body["outcome"], "review", "{}", second.text);
    let path = format!(
        "/v1/credit-decisions/{}/resolution",
        second.body["decision_id"].as_str().unwrap()
    );
    app.post_json(
        &path,
        &manager,
        &json!({"outcome": "approved", "comment": "go"}),
    )
    .await
    .problem(409, "insufficient_credit");
    let declined = app
        .post_json(
            &path,
            &manager,
            &json!({"outcome": "declined", "comment": "no"}),
        )
        .await;
    assert_eq!(declined.status, 201);
    assert_eq!(declined.body["approved_amount"], "0.00");
    // Not a review.
    let approved = decide(&app, &order("r-small", "BIG", "10.00", 30)).await;
    let path = format!(
        "/v1/credit-decisions/{}/resolution",
        approved.body["decision_id"].as_str().unwrap()
    );
    app.post_json(
        &path,
        &manager,
        &json!({"outcome": "approved", "comment": "?"}),
    )
    .await
    .problem(409, "review_already_resolved");
}

async fn expired_reservations_are_not_counted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    given(&app, "C-1", "5000.00", Facts::good()).await;
    let d = decide(&app, &order("r-1", "C-1", "1000.00", 30)).await;
    assert_eq!(d.body["outcome"], "approved", "{}", d.text);
    let token = app.token(ALL);
    assert_eq!(
        app.get("/v1/clients/C-1", &token).await.body["exposure"]["reserved"],
        "1000.00"
    );
    app.sql("UPDATE reservations SET expires_at = '2020-01-01 00:00:00'")
        .await
        .unwrap();
    assert_eq!(
        app.get("/v1/clients/C-1", &token).await.body["exposure"]["reserved"],
        "0.00"
    );
    // Decisions themselves are never edited.
    assert!(
        app.sql("UPDATE decisions SET outcome = 'declined'")
            .await
            .is_err()
    );
    assert!(app.sql("DELETE FROM decisions").await.is_err());
}

/// A client's decisions are listed through the audit log (no index of their own): exactly
/// that client's, resolutions included, the last recorded first, paged by the cursor both
/// decision lists use.
async fn a_clients_decisions_page_in_the_order_recorded(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let manager = app.token_for("credit-manager", ALL);
    for client in ["C-1", "C-2"] {
        given(&app, client, "500000.00", Facts::good()).await;
    }
    let mut mine = Vec::new();
    for i in 0..5 {
        for client in ["C-1", "C-2"] {
            let d = decide(
                &app,
                &order(&format!("r-{client}-{i}"), client, "100.00", 30),
            )
            .await;
            assert_eq!(d.status, 201, "{}", d.text);
            if client == "C-1" {
                mine.push(d.body["decision_id"].as_str().unwrap().to_owned());
            }
        }
    }
    let referred = decide(&app, &order("r-big", "C-1", "150000.00", 30)).await;
    assert_eq!(referred.body["outcome"], "review", "{}", referred.text);
    let referred_id = referred.body["decision_id"].as_str().unwrap().to_owned();
    mine.push(referred_id.clone());
    let resolved = app
        .post_json(
            &format!("/v1/credit-decisions/{referred_id}/resolution"),
            &manager,
            &json!({"outcome": "declined", "comment": "no"}),
        )
        .await;
    assert_eq!(resolved.status, 201, "{}", resolved.text);
    mine.push(resolved.body["decision_id"].as_str().unwrap().to_owned());
    mine.reverse();

    let mut listed = Vec::new();
    let mut path = "/v1/credit-decisions?client_id=C-1&limit=3".to_owned();
    loop {
        let page = app.get(&path, &manager).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.body["items"].as_array().unwrap() {
            assert_eq!(item["client_id"], "C-1");
            listed.push(item["decision_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                path = format!("/v1/credit-decisions?client_id=C-1&limit=3&cursor={next}")
            }
            None => break,
        }
    }
    assert_eq!(listed, mine, "newest recorded first, each once");

    let reviews = app
        .get(
            "/v1/credit-decisions?client_id=C-1&outcome=review",
            &manager,
        )
        .await;
    assert_eq!(reviews.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        reviews.body["items"][0]["decision_id"],
        referred_id.as_str()
    );
    assert_eq!(
        reviews.body["items"][0]["resolved_by"],
        resolved.body["decision_id"]
    );
    let waiting = app
        .get(
            "/v1/credit-decisions?client_id=C-1&outcome=review&resolved=false",
            &manager,
        )
        .await;
    assert_eq!(waiting.body["items"], json!([]));

    // The lists share their cursors: in a client's list, the decision a cursor names is a
    // position in the log (here the newest decision of all, the resolution).
    let newest = app.get("/v1/credit-decisions?limit=1", &manager).await;
    let cursor = newest.body["next_cursor"].as_str().unwrap().to_owned();
    let older = app
        .get(
            &format!("/v1/credit-decisions?client_id=C-1&limit=100&cursor={cursor}"),
            &manager,
        )
        .await;
    let older: Vec<&str> = older.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(older, mine[1..], "below the newest");
}

/// The client's version, which the decision writer compares with a draft's instead of reading
/// the client again.
fn version(app: &TestApp, client: &str) -> i64 {
    let mut conn = app.state.store.get().unwrap();
    let id = encours::domain::ClientId::parse(client).unwrap();
    encours::store::clients::lock_version(&mut conn, &id)
        .unwrap()
        .unwrap()
}

/// Every write that changes what a decision reads of a client moves its version (the
/// database's triggers), on both backends; the expiry sweep, which changes nothing a decision
/// reads, does not.
async fn the_client_version_follows_what_decisions_read(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    given(&app, "C-1", "5000.00", Facts::good()).await;
    given(&app, "C-2", "5000.00", Facts::good()).await;
    let token = app.token(ALL);
    let mut last = version(&app, "C-1");
    let other = version(&app, "C-2");
    let mut moved = |what: &str, now: i64| {
        assert!(now > last, "{what}: version {now}, was {last}");
        last = now;
    };
    // A reservation.
    let d = decide(&app, &order("r-1", "C-1", "1000.00", 30)).await;
    assert_eq!(d.body["outcome"], "approved", "{}", d.text);
    moved("reservation", version(&app, "C-1"));
    // A release, an invoice, a sales alert: the events projection.
    let decision_id = d.body["decision_id"].as_str().unwrap();
    let today = chrono::Utc::now().date_naive();
    let events = json!({"events": [
        {"event_id": "e-1", "client_id": "C-1", "type": "order_cancelled",
         "occurred_at": format!("{today}T08:00:00Z"), "decision_id": decision_id},
    ]});
    let answer = app
        .post_json("/v1/events", &app.token("events:write"), &events)
        .await;
    assert_eq!(
        answer.body["results"][0]["status"], "accepted",
        "{}",
        answer.text
    );
    moved("release", version(&app, "C-1"));
    app.sql("INSERT INTO sales_alerts (event_seq, client_id, negative, occurred_at) VALUES (999999, 'C-1', TRUE, '2026-11-30 10:00:00')")
        .await
        .unwrap();
    moved("sales alert", version(&app, "C-1"));
    // Any write to an invoice, whatever makes it.
    for (what, sql) in [
        (
            "invoice",
            "INSERT INTO invoices (client_id, invoice_id, paid_minor, credited_minor, open_minor, dunning_level) VALUES ('C-1', 'raw-1', 0, 0, 0, 0)",
        ),
        (
            "invoice changed",
            "UPDATE invoices SET dunning_level = 1 WHERE invoice_id = 'raw-1'",
        ),
        (
            "invoice removed",
            "DELETE FROM invoices WHERE invoice_id = 'raw-1'",
        ),
    ] {
        app.sql(sql).await.unwrap();
        moved(what, version(&app, "C-1"));
    }
    app.sql("UPDATE clients SET paid_late = 3 WHERE client_id = 'C-1'")
        .await
        .unwrap();
    moved("ledger", version(&app, "C-1"));
    let put = app
        .put_json("/v1/clients/C-1", &token, &client_body("EUR", "6000.00"))
        .await;
    assert!(put.status.is_success(), "{}", put.text);
    moved("profile", version(&app, "C-1"));
    // A reservation past its expiry, then swept: the sweep leaves the version alone.
    let d = decide(&app, &order("r-2", "C-1", "500.00", 30)).await;
    assert_eq!(d.body["outcome"], "approved", "{}", d.text);
    moved("second reservation", version(&app, "C-1"));
    app.sql("UPDATE reservations SET expires_at = '2020-01-01 00:00:00' WHERE status = 'active'")
        .await
        .unwrap();
    moved("expiry moved", version(&app, "C-1"));
    let swept = app
        .state
        .store
        .run(|conn| encours::store::reservations::expire_due(conn, chrono::Utc::now().naive_utc()))
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(
        version(&app, "C-1"),
        last,
        "the sweep changed nothing a decision reads"
    );
    assert_eq!(
        version(&app, "C-2"),
        other,
        "another client's version never moves"
    );
}

on_both_backends!(
    the_client_version_follows_what_decisions_read,
    good_client_approved_reserved_and_idempotent,
    rules_a_credit_manager_expects,
    prospects_are_created_and_pay_a_deposit,
    input_errors,
    parallel_orders_never_over_commit,
    a_decision_failing_in_the_writer_fails_alone,
    two_processes_on_one_postgres_never_over_commit,
    reviews_are_resolved_once,
    expired_reservations_are_not_counted,
    a_clients_decisions_page_in_the_order_recorded,
);
