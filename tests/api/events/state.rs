//! The live state, exact to the cent, after realistic histories.

use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

async fn late_partial_credited_uninsured_receivership(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "50000.00").await;
    let c = "C-1";
    let history = vec![
        // Paid 10 days late.
        invoice("e1", c, "F1", "10000.10", -100, -70),
        payment("e2", c, "F1", "10000.10", -60),
        // Partially paid, 20 days past due.
        invoice("e3", c, "F2", "5000.05", -50, -20),
        payment("e4", c, "F2", "2000.02", -15),
        // Not due yet, a credit note on it.
        invoice("e5", c, "F3", "8000.00", -40, 20),
        ev(
            "e6",
            c,
            "credit_note_issued",
            json!({"invoice_id": "F3", "amount": "500.01"}),
        ),
        // Cancelled by a credit note: settled, not paid.
        invoice("e7", c, "F4", "1200.00", -35, -5),
        ev(
            "e8",
            c,
            "credit_note_issued",
            json!({"invoice_id": "F4", "amount": 1200}),
        ),
        // Paid a day early, in two parts.
        invoice("e9", c, "F5", "3000.00", -60, -30),
        payment("e10", c, "F5", "1000.00", -40),
        payment("e11", c, "F5", "2000.00", -31),
        ev(
            "e12",
            c,
            "insurance_cover_changed",
            json!({
            "insurer": "Allianz Trade", "insured_amount": "60000.00", "valid_until": day(300),
            "occurred_at": at(-90)}),
        ),
        ev(
            "e13",
            c,
            "external_score_updated",
            json!({"provider": "Ellisphere", "score": 72, "as_of": day(-10)}),
        ),
        ev(
            "e14",
            c,
            "sales_alert",
            json!({"sentiment": "negative", "note": "late deliveries", "occurred_at": at(-3)}),
        ),
        ev(
            "e15",
            c,
            "sales_alert",
            json!({"sentiment": "positive", "note": "old news", "occurred_at": at(-100)}),
        ),
        ev(
            "e16",
            c,
            "dunning_sent",
            json!({"invoice_id": "F2", "level": 2}),
        ),
    ];
    let answer = post(&app, &token, &history).await;
    assert!(
        statuses(&answer).iter().all(|s| s == "accepted"),
        "{}",
        answer.text
    );

    let state = get_client(&app, &token, c).await;
    assert_eq!(
        state["exposure"],
        json!({"open_invoices": "10500.02", "reserved": "0.00", "total": "10500.02"})
    );
    assert_eq!(state["available_credit"], "39499.98");
    assert_eq!(
        state["overdue"],
        json!({"amount": "3000.03", "max_days_past_due": 20})
    );
    assert_eq!(
        state["payment_behaviour"],
        json!({"invoices_paid": 2, "paid_late": 1, "average_days_late": 10})
    );
    assert_eq!(state["insurance"]["insured_amount"], "60000.00");
    assert_eq!(
        state["external_score"],
        json!({"provider": "Ellisphere", "score": 72, "as_of": day(-10)})
    );
    assert_eq!(state["alerts"], json!({"negative": 1, "positive": 0}));
    assert_eq!(state["legal_status"], "none");
    assert!(state["risk"]["score"].is_number(), "scored: {state}");
    // The batch's own alert counts in its review, though its row is written after the review
    // has read the client (an alert row follows its event's log row).
    let factor = |code: &str| {
        state["risk"]["factors"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["code"] == code))
            .map(|f| f["points"].clone())
    };
    assert_eq!(factor("NEGATIVE_ALERTS"), Some(json!(10)), "{state}");

    // Insurance withdrawn, then receivership: blocked by the on_event policy.
    let later = vec![
        ev(
            "e17",
            c,
            "insurance_cover_changed",
            json!({"insurer": "Allianz Trade", "insured_amount": "0"}),
        ),
        ev(
            "e18",
            c,
            "legal_status_changed",
            json!({"legal_status": "receivership"}),
        ),
    ];
    let answer = post(&app, &token, &later).await;
    assert_eq!(statuses(&answer), ["accepted", "accepted"]);
    let state = get_client(&app, &token, c).await;
    assert!(state["insurance"].is_null(), "{state}");
    assert_eq!(state["legal_status"], "receivership");
    assert_eq!(state["status"], "blocked");
    let codes: Vec<&str> = answer.body["reviews"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        codes.contains(&"INSOLVENCY_PROCEEDINGS") && codes.contains(&"INSURANCE_COVER_WITHDRAWN"),
        "{codes:?}"
    );
    // Exposure did not move.
    assert_eq!(state["exposure"]["total"], "10500.02");
}

async fn out_of_order_and_excess(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-2", "JPY", "1000000").await;
    let c = "C-2";
    // The payment arrives before its invoice: kept, then counted.
    let first = post(&app, &token, &[payment("p1", c, "F1", "700", -5)]).await;
    assert_eq!(statuses(&first), ["accepted"]);
    assert_eq!(
        first.body["results"][0]["notices"][0]["code"],
        "PAYMENT_BEFORE_INVOICE"
    );
    assert_eq!(
        get_client(&app, &token, c).await["exposure"]["open_invoices"],
        "0"
    );
    let issued = post(&app, &token, &[invoice("i1", c, "F1", "1000", -30, 0)]).await;
    assert_eq!(statuses(&issued), ["accepted"]);
    assert_eq!(
        get_client(&app, &token, c).await["exposure"]["open_invoices"],
        "300"
    );
    // Over-payment: the invoice goes to zero, the excess stays on it, other invoices keep theirs.
    let more = post(
        &app,
        &token,
        &[
            invoice("i2", c, "F2", "5000", -10, 20),
            payment("p2", c, "F1", "500", -1),
            ev(
                "c1",
                c,
                "credit_note_issued",
                json!({"invoice_id": "F2", "amount": "6000"}),
            ),
            invoice("i3", c, "F3", "250", -1, 30),
        ],
    )
    .await;
    assert_eq!(statuses(&more), ["accepted"; 4]);
    assert_eq!(more.body["results"][1]["notices"][0]["code"], "OVERPAYMENT");
    assert_eq!(
        more.body["results"][2]["notices"][0]["code"],
        "CREDIT_NOTE_EXCEEDS_OPEN"
    );
    let state = get_client(&app, &token, c).await;
    assert_eq!(state["exposure"]["open_invoices"], "250");
    assert_eq!(state["payment_behaviour"]["invoices_paid"], 1);
    assert_eq!(state["payment_behaviour"]["paid_late"], 0);
    // A second invoice_issued for F1 is refused, nothing changes.
    let again = post(&app, &token, &[invoice("i4", c, "F1", "1", -1, 1)]).await;
    assert_eq!(
        again.body["results"][0]["error"]["code"],
        "invoice_already_issued"
    );
    assert_eq!(again.body["results"][0]["error"]["status"], 409);
    // A cover change reported as older than the one in force is logged, not applied.
    let covers = post(
        &app,
        &token,
        &[
            ev(
                "k1",
                c,
                "insurance_cover_changed",
                json!({"insurer": "Coface", "insured_amount": "900000", "occurred_at": at(-1)}),
            ),
            ev(
                "k2",
                c,
                "insurance_cover_changed",
                json!({"insurer": "Atradius", "insured_amount": "1", "occurred_at": at(-2)}),
            ),
            ev(
                "s1",
                c,
                "external_score_updated",
                json!({"provider": "X", "score": 40, "as_of": day(-1)}),
            ),
            ev(
                "s2",
                c,
                "external_score_updated",
                json!({"provider": "X", "score": 90, "as_of": day(-9)}),
            ),
        ],
    )
    .await;
    assert_eq!(statuses(&covers), ["accepted"; 4]);
    assert_eq!(
        covers.body["results"][1]["notices"][0]["code"],
        "OLDER_THAN_IN_FORCE"
    );
    assert_eq!(
        covers.body["results"][3]["notices"][0]["code"],
        "OLDER_THAN_IN_FORCE"
    );
    let state = get_client(&app, &token, c).await;
    assert_eq!(state["insurance"]["insurer"], "Coface");
    assert_eq!(state["external_score"]["score"], 40);
    let listed = app.get("/v1/clients/C-2/events?limit=500", &token).await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(10),
        "{}",
        listed.text
    );
}

on_both_backends!(
    late_partial_credited_uninsured_receivership,
    out_of_order_and_excess
);
