//! The audit chain: appended with every change, and any edit made behind the service's back
//! (triggers bypassed, rows changed in the file or table) is located by `verify`.

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
    let update = app
        .sql("UPDATE audit_records SET actor = 'someone-else'")
        .await;
    assert!(update.is_err(), "UPDATE must be refused");
    let delete = app.sql("DELETE FROM audit_records").await;
    assert!(delete.is_err(), "DELETE must be refused");
    assert_eq!(
        app.get(&format!("/v1/audit/records/{}", base + 1), &token)
            .await
            .body["actor"],
        "tester"
    );
}

async fn verify_locates_tampering(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token("clients:write audit:read");
    let (base, _) = app.audit_head().await;
    for i in 0..5 {
        let limit = format!("{}.00", 100 + i);
        app.put_json("/v1/clients/C-1", &token, &client_body("EUR", &limit))
            .await;
    }
    assert_eq!(
        app.get("/v1/audit/verify", &token).await.body["first_broken"],
        serde_json::Value::Null
    );

    // Someone with database access bypasses the guard and edits record 3's payload.
    let disable = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_records_no_update",
        Backend::Postgres => "ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only",
    };
    app.sql(disable).await.unwrap();
    let third = base + 3;
    app.sql(&format!(
        "UPDATE audit_records SET payload = replace(payload, '102.00', '999.00') WHERE sequence = {third}"
    ))
    .await
    .unwrap();
    let report = app.get("/v1/audit/verify", &token).await;
    assert_eq!(report.body["ok"], false, "{}", report.text);
    assert_eq!(report.body["first_broken"], third);
    assert_eq!(report.body["records"], base + 5);
}

on_both_backends!(records_are_append_only, verify_locates_tampering);
