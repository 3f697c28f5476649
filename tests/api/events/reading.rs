//! Reading: a client's events (paginated, by type) and the portfolio.

use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

async fn a_clients_events_page_by_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "10000.00").await;
    client(&app, &token, "C-2", "EUR", "10000.00").await;
    let mut events = Vec::new();
    for i in 0..7 {
        events.push(invoice(
            &format!("i{i}"),
            "C-1",
            &format!("F{i}"),
            "10.00",
            -1,
            30,
        ));
        events.push(payment(
            &format!("p{i}"),
            "C-1",
            &format!("F{i}"),
            "1.00",
            0,
        ));
    }
    events.push(invoice("other", "C-2", "F0", "10.00", -1, 30));
    assert_eq!(statuses(&post(&app, &token, &events).await).len(), 15);

    let page = app.get("/v1/clients/C-1/events?limit=5", &token).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["event"]["event_id"], "p6", "newest first");
    assert_eq!(items[0]["event"]["amount"], "1.00");
    assert_eq!(items[0]["received_by"], "tester");
    let mut seen = 5;
    let mut cursor = page.body["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let next = app
            .get(
                &format!("/v1/clients/C-1/events?limit=5&cursor={c}"),
                &token,
            )
            .await;
        seen += next.body["items"].as_array().unwrap().len();
        cursor = next.body["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 14);
    let invoices = app
        .get(
            "/v1/clients/C-1/events?type=invoice_issued&limit=500",
            &token,
        )
        .await;
    let types: Vec<&str> = invoices.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["event"]["type"].as_str())
        .collect();
    assert_eq!(types, ["invoice_issued"; 7]);
    let both = app
        .get(
            "/v1/clients/C-1/events?type=invoice_issued,payment_received",
            &token,
        )
        .await;
    assert_eq!(both.body["items"].as_array().map(Vec::len), Some(14));
    assert!(both.body["next_cursor"].is_null());

    app.get("/v1/clients/C-404/events", &token)
        .await
        .problem(404, "not_found");
    let bad = app
        .get("/v1/clients/C-1/events?type=paid&limit=0&cursor=x", &token)
        .await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.fields(), ["type", "limit", "cursor"]);
    app.get("/v1/clients/C-1/events", &app.token("events:write"))
        .await
        .problem(403, "forbidden");
}

async fn the_portfolio(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    for (id, currency) in [
        ("A-1", "EUR"),
        ("A-2", "EUR"),
        ("A-3", "EUR"),
        ("U-1", "USD"),
    ] {
        client(&app, &token, id, currency, "100000.00").await;
    }
    let answer = post(
        &app,
        &token,
        &[
            invoice("e1", "A-1", "F1", "9000.00", -40, -10),
            ev(
                "e2",
                "A-1",
                "insurance_cover_changed",
                json!({"insurer": "Coface", "insured_amount": "5000.00"}),
            ),
            invoice("e3", "A-2", "F1", "1000.00", -100, -70),
            payment("e4", "A-2", "F1", "1000.00", -65),
            invoice("e5", "A-2", "F2", "3000.00", -10, 20),
            ev(
                "e6",
                "A-2",
                "insurance_cover_changed",
                json!({"insurer": "Coface", "insured_amount": "50000.00", "valid_until": day(-1)}),
            ),
            invoice("e7", "U-1", "F1", "123.45", -5, 25),
        ],
    )
    .await;
    assert_eq!(statuses(&answer), ["accepted"; 7]);
    let portfolio = app.get("/v1/portfolio", &token).await;
    assert_eq!(portfolio.status, 200, "{}", portfolio.text);
    let books = portfolio.body["currencies"].as_array().unwrap();
    assert_eq!(
        books
            .iter()
            .map(|b| b["currency"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["EUR", "USD"]
    );
    let eur = &books[0];
    assert_eq!(
        eur["totals"],
        json!({"clients": 3, "exposure": "12000.00", "insured_exposure": "5000.00", "overdue": "9000.00"})
    );
    let bands = eur["bands"].as_array().unwrap();
    assert_eq!(bands.len(), 6);
    assert!(bands[5]["band"].is_null());
    assert_eq!(
        bands[5]["clients"], 1,
        "A-3 has no event, so no score: {}",
        bands[5]
    );
    let clients: i64 = bands.iter().filter_map(|b| b["clients"].as_i64()).sum();
    assert_eq!(clients, 3);
    // Receivables 12000 over 13000 of sales in 90 days (the 1000 of day -100 is older).
    assert_eq!(eur["dso"]["receivables"], "12000.00");
    assert_eq!(eur["dso"]["credit_sales"], "12000.00");
    assert_eq!(eur["dso"]["days"], "90");
    let largest: Vec<&str> = eur["largest_exposures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["client_id"].as_str())
        .collect();
    assert_eq!(largest, ["A-1", "A-2", "A-3"]);
    assert_eq!(eur["largest_exposures"][0]["exposure"], "9000.00");
    assert_eq!(books[1]["totals"]["exposure"], "123.45");
    assert_eq!(
        portfolio.body["decisions_last_30_days"]["counts"],
        json!([])
    );
    let only_usd = app.get("/v1/portfolio?currency=USD", &token).await;
    assert_eq!(
        only_usd.body["currencies"].as_array().map(Vec::len),
        Some(1)
    );
    app.get("/v1/portfolio?currency=usd", &token)
        .await
        .problem(422, "validation_failed");
}

on_both_backends!(a_clients_events_page_by_page, the_portfolio);
