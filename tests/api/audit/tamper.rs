//! The audit chain: appended with every act, guarded by triggers, and any edit made behind the
//! service's back (triggers bypassed, rows changed in the file or table) located by `verify`
//! at the exact record.

use serde_json::Value;

use crate::decisions::{ALL, Facts, decide, given, order};
use crate::on_both_backends;
use crate::support::{Backend, TestApp, client_body};

async fn records_are_append_only(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token("clients:write audit:read");
    let (base, _) = app.audit_head().await;
    app.put_json("/v1/clients/C-1", &token, &client_body("EUR", "10"))
        .await;
    for statement in [
        "UPDATE audit_records SET actor = 'someone-else'",
        "DELETE FROM audit_records",
        "UPDATE audit_head SET sequence = 0",
        "DELETE FROM audit_head",
    ] {
        let refused = app.sql(statement).await;
        assert!(refused.is_err(), "must be refused: {statement}");
    }
    given(&app, "C-2", "5000.00", Facts::good()).await;
    let d = decide(&app, &order("r-1", "C-2", "100.00", 30)).await;
    assert_eq!(d.status, 201, "{}", d.text);
    for statement in [
        "UPDATE decisions SET approved_minor = 0",
        "DELETE FROM decisions",
        "UPDATE policy_versions SET source = ''",
        "DELETE FROM policy_versions",
    ] {
        let refused = app.sql(statement).await;
        assert!(refused.is_err(), "must be refused: {statement}");
    }
    assert_eq!(
        app.get(&format!("/v1/audit/records/{}", base + 1), &token)
            .await
            .body["actor"],
        "tester"
    );
    assert_eq!(app.get("/v1/audit/verify", &token).await.body["ok"], true);
}

/// What someone with write access to the database does behind the service's back.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// Changes the approved amount in a decision's record.
    EditAmount,
    /// Removes a record from the middle.
    DeleteMiddle,
    /// Removes the last record (the chain before it still links up).
    DeleteLast,
    /// Swaps two records' places.
    Swap,
}

/// Five decisions, then `tamper` on the third: `verify` must point at the right record.
async fn locate(backend: Backend, tamper: Tamper) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    given(&app, "C-1", "50000.00", Facts::good()).await;
    let mut sequences = Vec::new();
    for i in 0..5 {
        let amount = format!("{}.00", 1000 + i);
        let d = decide(&app, &order(&format!("r-{i}"), "C-1", &amount, 30)).await;
        assert_eq!(d.status, 201, "{}", d.text);
        sequences.push(d.body["audit"]["sequence"].as_i64().unwrap());
    }
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["first_broken"], Value::Null, "{}", verify.text);
    let records = verify.body["records"].as_i64().unwrap();

    let bypass: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_records_no_update",
            "DROP TRIGGER audit_records_no_delete",
        ],
        Backend::Postgres => {
            &["ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only"]
        }
    };
    for statement in bypass {
        app.sql(statement).await.unwrap();
    }
    let third = sequences[2];
    let last = *sequences.last().unwrap();
    let (statements, expected, remaining) = match tamper {
        Tamper::EditAmount => (
            vec![format!(
                "UPDATE audit_records SET payload = replace(payload, '\"approved_amount\":\"1002.00\"', '\"approved_amount\":\"9002.00\"') WHERE sequence = {third}"
            )],
            third,
            records,
        ),
        Tamper::DeleteMiddle => (
            vec![format!(
                "DELETE FROM audit_records WHERE sequence = {third}"
            )],
            third,
            records - 1,
        ),
        Tamper::DeleteLast => (
            vec![format!("DELETE FROM audit_records WHERE sequence = {last}")],
            last,
            records - 1,
        ),
        Tamper::Swap => (
            vec![
                format!("UPDATE audit_records SET sequence = -1 WHERE sequence = {third}"),
                format!(
                    "UPDATE audit_records SET sequence = {third} WHERE sequence = {}",
                    third + 1
                ),
                format!(
                    "UPDATE audit_records SET sequence = {} WHERE sequence = -1",
                    third + 1
                ),
            ],
            third,
            records,
        ),
    };
    for statement in &statements {
        let changed = app.sql(statement).await.unwrap();
        assert_eq!(changed, 1, "{statement}");
    }
    let report = app.get("/v1/audit/verify", &token).await;
    assert_eq!(report.body["ok"], false, "{tamper:?}: {}", report.text);
    assert_eq!(
        report.body["first_broken"], expected,
        "{tamper:?}: {}",
        report.text
    );
    assert_eq!(report.body["records"], remaining, "{}", report.text);

    if let Tamper::EditAmount = tamper {
        // The edited record no longer replays as recorded: the replay names the field.
        let replay = app
            .post_json(
                &format!("/v1/audit/records/{third}/replay"),
                &token,
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(replay.status, 200, "{}", replay.text);
        assert_eq!(replay.body["identical"], false, "{}", replay.text);
        let paths: Vec<&str> = replay.body["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"answer.approved_amount"), "{}", replay.text);
        assert!(
            paths.iter().all(|p| p.ends_with("approved_amount")),
            "only the edited amount differs: {}",
            replay.text
        );
    }
}

async fn an_edited_amount_is_located(backend: Backend) {
    locate(backend, Tamper::EditAmount).await;
}

async fn a_deleted_record_is_located(backend: Backend) {
    locate(backend, Tamper::DeleteMiddle).await;
}

async fn a_deleted_last_record_is_located(backend: Backend) {
    locate(backend, Tamper::DeleteLast).await;
}

async fn swapped_records_are_located(backend: Backend) {
    locate(backend, Tamper::Swap).await;
}

on_both_backends!(
    records_are_append_only,
    an_edited_amount_is_located,
    a_deleted_record_is_located,
    a_deleted_last_record_is_located,
    swapped_records_are_located,
);
