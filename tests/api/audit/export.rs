//! Reading the log: the filtered, paginated listing, and the export streamed in chunks over
//! 100,000 records, whose payloads are exactly what was hashed.

use futures_util::StreamExt;
use serde_json::Value;

use crate::decisions::{ALL, Facts, decide, given, order};
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

const BULK: i64 = 100_000;

async fn listing_filters_and_pages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    given(&app, "C-1", "50000.00", Facts::good()).await;
    given(&app, "C-2", "50000.00", Facts::good()).await;
    for i in 0..7 {
        let client = if i % 2 == 0 { "C-1" } else { "C-2" };
        let d = decide(&app, &order(&format!("r-{i}"), client, "100.00", 30)).await;
        assert_eq!(d.status, 201, "{}", d.text);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/audit/records?kind=decision&client_id=C-1&limit=3".to_owned();
    loop {
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for r in page.body["items"].as_array().unwrap() {
            assert_eq!(r["kind"], "decision");
            assert_eq!(r["client_id"], "C-1");
            assert!(r["payload"]["answer"]["outcome"].is_string(), "{r}");
            seen.push(r["sequence"].as_i64().unwrap());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                path =
                    format!("/v1/audit/records?kind=decision&client_id=C-1&limit=3&cursor={next}")
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "chain order: {seen:?}"
    );

    let newest = app
        .get("/v1/audit/records?order=desc&limit=2", &token)
        .await;
    let items = newest.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[0]["sequence"].as_i64() > items[1]["sequence"].as_i64());
    let (head, _) = app.audit_head().await;
    assert_eq!(items[0]["sequence"], head);

    let future = app
        .get("/v1/audit/records?from=2999-01-01T00:00:00Z", &token)
        .await;
    assert_eq!(future.body["items"], Value::Array(vec![]));
    for bad in [
        "/v1/audit/records?kind=DROP%20TABLE",
        "/v1/audit/records?limit=0",
        "/v1/audit/records?cursor=nope",
        "/v1/audit/records?order=sideways",
        "/v1/audit/records?colour=red",
        "/v1/audit/records?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/v1/audit/export?format=xml",
    ] {
        let answer = app.get(bad, &token).await;
        assert!(
            answer.status == 400 || answer.status == 422,
            "{bad}: {} {}",
            answer.status,
            answer.text
        );
        assert_eq!(
            answer.headers.get("content-type").unwrap(),
            "application/problem+json",
            "{bad}"
        );
    }
    app.get("/v1/audit/records", &app.token("decisions:read"))
        .await
        .problem(403, "forbidden");
}

/// Appends `BULK` well-formed records straight to the table (generating them through the API
/// would take minutes): the export neither knows nor cares how they got there.
async fn bulk_records(app: &TestApp, base: i64) {
    let select = format!(
        "SELECT {base} + i, 'client.updated', 'client:BULK-' || i, 'BULK', 'loader', \
         '2026-11-30 12:00:00', '{{\"changes\":{{\"credit_limit\":\"' || i || '.00\"}},\"note\":\"bulk record for the export test, padded to a realistic size: lorem ipsum dolor sit amet\"}}', \
         'prev-' || i, 'hash-' || i"
    );
    let insert = "INSERT INTO audit_records (sequence, kind, subject, client_id, actor, recorded_at, payload, prev_hash, hash)";
    let statement = match app.state.settings.database_url.starts_with("sqlite") {
        true => format!(
            "{insert} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BULK}) {select} FROM n"
        ),
        false => format!("{insert} {select} FROM generate_series(1, {BULK}) AS n(i)"),
    };
    app.sql(&statement).await.unwrap();
    app.sql(&format!(
        "UPDATE audit_head SET sequence = {}, hash = 'hash-{BULK}'",
        base + BULK
    ))
    .await
    .unwrap();
}

async fn export_streams_a_hundred_thousand_records(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    let (base, _) = app.audit_head().await;
    bulk_records(&app, base).await;

    let mut res = app
        .streaming_get("/v1/audit/export?format=ndjson", &token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/x-ndjson"
    );
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    // Read chunk by chunk, keeping only the unfinished line: the client side is constant
    // memory too.
    let (mut lines, mut chunks, mut expected, mut rest) = (0_i64, 0, 1_i64, Vec::new());
    while let Some(chunk) = res.next().await {
        let chunk = chunk.expect("chunk");
        chunks += 1;
        rest.extend_from_slice(&chunk);
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = rest.drain(..=end).collect();
            let record: Value = serde_json::from_slice(&line).expect("one JSON record a line");
            assert_eq!(record["sequence"], expected);
            expected += 1;
            lines += 1;
        }
    }
    assert!(rest.is_empty());
    assert_eq!(lines, base + BULK);
    assert!(chunks > 100, "{chunks} chunks");

    let csv = app
        .get(
            "/v1/audit/export?format=csv&kind=policy.version_created",
            &token,
        )
        .await;
    assert_eq!(csv.status, 200);
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.get(0), Some("sequence"));
    assert_eq!(headers.get(8), Some("payload"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 8, "one row a shipped policy");
    let first = rows[0].get(0).unwrap();
    let stored = app.get(&format!("/v1/audit/records/{first}"), &token).await;
    assert_eq!(stored.body["kind"], "policy.version_created");
    assert_eq!(rows[0].get(7), stored.body["hash"].as_str());
    let payload: Value = serde_json::from_str(rows[0].get(8).unwrap()).unwrap();
    assert_eq!(payload, stored.body["payload"]);
}

on_both_backends!(
    listing_filters_and_pages,
    export_streams_a_hundred_thousand_records
);
