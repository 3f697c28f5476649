//! Operations: health, readiness, metrics, request ids and the offline docs.

use crate::decisions::{Facts, decide, given, order};
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

async fn health_and_readiness(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(ready.body["database"], expected);
}

async fn metrics_count_requests_by_route(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.get("/v1/clients/ABC", &app.token("clients:read")).await;
    app.call("GET", "/v1/clients", None, None).await;
    let metrics = app.call("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text;
    assert!(
        text.contains(r#"encours_http_requests_total{method="GET",route="/v1/clients/{client_id}",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/clients",status="401"} 1"#),
        "{text}"
    );
    assert!(text.contains("encours_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"encours_db_pool_connections{state="idle"}"#));
}

/// The value of one sample line of a Prometheus text page.
fn sample<T: std::str::FromStr>(text: &str, name: &str) -> T {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// A good client, `client`, and three orders of it decided (201).
async fn three_orders(app: &TestApp, client: &str) {
    given(app, client, "50000.00", Facts::good()).await;
    for n in 0..3 {
        let answer = decide(app, &order(&format!("{client}-{n}"), client, "100.00", 30)).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
}

/// Every stage a decision runs is counted, compiled or interpreted. The counters are the
/// process's (other tests run policies meanwhile), so each decision adds at least its seven
/// stages.
async fn metrics_count_policy_stages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let compiled = r#"encours_policy_stage_runs_total{mode="compiled"}"#;
    let interpreted = r#"encours_policy_stage_runs_total{mode="interpreted"}"#;
    let stages = |text: &str| sample::<u64>(text, compiled) + sample::<u64>(text, interpreted);
    let before = app.call("GET", "/metrics", None, None).await.text;
    three_orders(&app, "C-M").await;
    let after = app.call("GET", "/metrics", None, None).await.text;
    assert!(
        stages(&after) >= stages(&before) + 3 * 7,
        "{before}\n{after}"
    );
}

/// The decision writer's counters are this app's own: every decision counted once, in one
/// to three commits, with time spent on them; a second scrape adds nothing.
async fn metrics_count_the_decision_writer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    three_orders(&app, "C-W").await;
    let text = app.call("GET", "/metrics", None, None).await.text;
    assert_eq!(
        sample::<u64>(&text, "encours_decision_writer_decisions_total"),
        3,
        "{text}"
    );
    let batches: u64 = sample(&text, "encours_decision_writer_batches_total");
    assert!((1..=3).contains(&batches), "{text}");
    let busy: f64 = sample(&text, "encours_decision_writer_busy_seconds_total");
    assert!(busy > 0.0, "{text}");
    let again = app.call("GET", "/metrics", None, None).await.text;
    assert_eq!(
        sample::<u64>(&again, "encours_decision_writer_decisions_total"),
        3,
        "{again}"
    );
}

/// The event writer's counters (SQLite's group commit): two batches sent one after the other
/// are two transactions of one batch, with time spent on them. PostgreSQL writes batches on
/// pooled connections, with no writer to count.
async fn metrics_count_the_event_writer(backend: Backend) {
    use crate::events::{SCOPES, client, cover, post, statuses};
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-EW", "EUR", "50000.00").await;
    for n in 0..2 {
        let answer = post(
            &app,
            &token,
            &[cover(&format!("ew-{n}"), "C-EW", "40000.00", 90)],
        )
        .await;
        assert_eq!(statuses(&answer), ["accepted"]);
    }
    let text = app.call("GET", "/metrics", None, None).await.text;
    let (transactions, batches) = match backend {
        Backend::Sqlite => (2, 2),
        Backend::Postgres => (0, 0),
    };
    assert_eq!(
        sample::<u64>(&text, "encours_event_writer_transactions_total"),
        transactions,
        "{text}"
    );
    assert_eq!(
        sample::<u64>(&text, "encours_event_writer_batches_total"),
        batches,
        "{text}"
    );
    let busy: f64 = sample(&text, "encours_event_writer_busy_seconds_total");
    assert_eq!(busy > 0.0, backend == Backend::Sqlite, "{text}");
}

async fn request_ids_are_echoed_or_made(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .insert_header(("X-Request-Id", "erp-42.a"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "erp-42.a");
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .insert_header(("X-Request-Id", "bad id with spaces"))
        .send()
        .await
        .unwrap();
    let made = res.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    let err = app.call("GET", "/nowhere", None, None).await;
    assert!(
        err.headers.get("x-request-id").is_some(),
        "errors carry the id too"
    );
}

async fn docs_render_offline(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let followed = app.call("GET", "/docs", None, None).await;
    assert_eq!(followed.status, 200, "/docs redirects to /docs/");
    let page = app.call("GET", "/docs/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    assert!(
        !page.text.contains("https://"),
        "the page pulls nothing from the network"
    );
    let bundle = app
        .call("GET", "/docs/swagger-ui-bundle.js", None, None)
        .await;
    assert_eq!(bundle.status, 200);
    assert!(
        bundle.text.len() > 100_000,
        "the bundle is served from the binary"
    );
    let init = app
        .call("GET", "/docs/swagger-initializer.js", None, None)
        .await;
    assert!(init.text.contains("/openapi.json"), "{}", init.text);
}

on_both_backends!(
    health_and_readiness,
    metrics_count_requests_by_route,
    metrics_count_policy_stages,
    metrics_count_the_decision_writer,
    metrics_count_the_event_writer,
    request_ids_are_echoed_or_made,
    docs_render_offline,
);
