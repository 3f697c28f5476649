//! Reviews off the writer: a batch commits its projection with a review mark, reviews its
//! clients outside the write lock and writes the reviews in a second transaction. A client
//! changed in between is reviewed again on its new state; a mark left by a crash between the
//! two transactions is picked up by the scheduled pass.

use chrono::Utc;
use diesel::RunQueryDsl;
use encours::service::ServiceError;
use encours::service::events::{Connections, ingest_at, ingest_with};
use encours::service::schedule;
use encours::store::{AnyConnection, StoreError};
use serde_json::{Value, json};

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

/// One connection, on which a credit manager sets C-1's limit (in minor units) right after
/// each read of the batch's reviews, in turn: the reviews just run are stale.
struct Meddling<'c> {
    conn: &'c mut AnyConnection,
    limits: Vec<i64>,
}

impl Connections for Meddling<'_> {
    fn writing<T>(
        &mut self,
        f: impl FnMut(&mut AnyConnection) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let mut conn: &mut AnyConnection = self.conn;
        conn.writing(f)
    }

    fn reading<T>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let read = f(self.conn)?;
        if !self.limits.is_empty() {
            let limit = self.limits.remove(0);
            diesel::sql_query(format!(
                "UPDATE clients SET credit_limit_minor = {limit} WHERE client_id = 'C-1'"
            ))
            .execute(self.conn)
            .map_err(StoreError::Query)?;
        }
        Ok(read)
    }
}

/// The batch's review of C-1 (a cover cut to 30,000) with these limit changes after reads:
/// the `before` of its audit record.
async fn review_after_meddling(app: &TestApp, limits: Vec<i64>, id: &str) -> Value {
    let store = app.store().clone();
    let registry = app.state.policies.clone();
    let cut = ev(
        id,
        "C-1",
        "insurance_cover_changed",
        json!({"insurer": "Coface", "insured_amount": "30000.00", "valid_until": day(200)}),
    );
    let ingested = tokio::task::spawn_blocking(move || {
        let mut conn = store.get().expect("connection");
        let mut conns = Meddling {
            conn: &mut conn,
            limits,
        };
        ingest_with(&mut conns, &registry, &[cut], "erp", Utc::now())
    })
    .await
    .expect("join")
    .expect("ingested");
    assert_eq!(ingested.reviews.len(), 1, "{:?}", ingested.reviews);
    let sequence = ingested.reviews[0].audit.sequence;
    let record = app
        .get(
            &format!("/v1/audit/records/{sequence}"),
            &app.token("audit:read"),
        )
        .await;
    assert_eq!(record.status, 200, "{}", record.text);
    record.body["payload"]["before"].clone()
}

async fn a_client_changed_during_its_review_is_reviewed_again(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "50000.00").await;
    // Changed after the first read: the second round, outside the lock, sees 40,000.
    let before = review_after_meddling(&app, vec![4_000_000], "e1").await;
    assert_eq!(before["credit_limit"], "40000.00", "{before}");
    // Changed after both reads: the last round reviews it under the lock, on 45,000.
    app.sql("UPDATE clients SET credit_limit_minor = 5000000 WHERE client_id = 'C-1'")
        .await
        .unwrap();
    let before = review_after_meddling(&app, vec![4_000_000, 4_500_000], "e2").await;
    assert_eq!(before["credit_limit"], "45000.00", "{before}");
    let state = get_client(&app, &token, "C-1").await;
    assert_eq!(state["credit_limit"], "30000.00");
    let verify = app.get("/v1/audit/verify", &app.token("audit:read")).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
}

async fn a_crash_between_the_two_transactions_loses_no_review(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "50000.00").await;
    client(&app, &token, "C-2", "EUR", "50000.00").await;
    // What the first transaction leaves when the process dies before the second: the
    // projection and the mark, no review (C-1 was never scored).
    app.sql(
        "UPDATE clients SET open_invoices_minor = 100000, review_pending = TRUE \
         WHERE client_id = 'C-1'",
    )
    .await
    .unwrap();
    assert!(get_client(&app, &token, "C-1").await["risk"]["score"].is_null());
    let registry = app.state.policies.clone();
    let pass = || {
        let registry = registry.clone();
        app.store()
            .run(move |conn| schedule::run_pass(conn, &registry, Utc::now()))
    };
    let report = pass().await.unwrap();
    assert_eq!((report.reviewed, report.failed), (1, 0), "{report:?}");
    let state = get_client(&app, &token, "C-1").await;
    assert!(state["risk"]["score"].is_number(), "scored: {state}");
    assert!(get_client(&app, &token, "C-2").await["risk"]["score"].is_null());
    // The mark is cleared: the next pass has nothing to do.
    assert_eq!(pass().await.unwrap().reviewed, 0);
    // A batch's own second transaction clears it too.
    let conn_store = app.store().clone();
    let registry = app.state.policies.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = conn_store.get().expect("connection");
        let events = [invoice("e1", "C-2", "F1", "100.00", 0, 30)];
        ingest_at(&mut conn, &registry, &events, "erp", Utc::now())
    })
    .await
    .expect("join")
    .expect("ingested");
    assert_eq!(pass().await.unwrap().reviewed, 0);
}

on_both_backends!(
    a_client_changed_during_its_review_is_reviewed_again,
    a_crash_between_the_two_transactions_loses_no_review
);
