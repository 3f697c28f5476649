//! Bad input: every malformed body, unknown field, bad value, oversized payload, unknown route
//! and wrong method is a problem+json 4xx that says what is wrong, and changes nothing.

use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, client_body};

const RW: &str = "clients:read clients:write audit:read";

async fn malformed_bodies_are_400(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    for raw in ["{", "not json", "{\"name\": }", "[1,2", "{} trailing"] {
        let answer = app.put_raw("/v1/clients/C-1", &token, raw).await;
        answer.problem(400, "validation_failed");
    }
    let invalid_utf8 = app
        .call(
            "PUT",
            "/v1/clients/C-1",
            Some(&token),
            Some(("application/json", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'])),
        )
        .await;
    invalid_utf8.problem(400, "validation_failed");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    app.put_raw("/v1/clients/C-1", &token, &deep)
        .await
        .problem(422, "validation_failed");
    let deep_field = format!(
        "{{\"name\":\"A\",\"country\":\"FR\",\"currency\":\"EUR\",\"credit_limit\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let answer = app.put_raw("/v1/clients/C-1", &token, &deep_field).await;
    assert!(answer.status.is_client_error(), "{}", answer.text);
    assert_eq!(answer.body["code"], "validation_failed");
    let wrong_type = app
        .call(
            "PUT",
            "/v1/clients/C-1",
            Some(&token),
            Some(("text/plain", b"{}".to_vec())),
        )
        .await;
    wrong_type.problem(415, "unsupported_media_type");
    let nothing = app.get("/v1/clients/C-1", &token).await;
    nothing.problem(404, "not_found");
}

async fn invalid_fields_are_422_and_named(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    let (base, _) = app.audit_head().await;
    let cases = [
        (json!({"surprise": 1}), "surprise"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"country": "XX"}), "country"),
        (json!({"country": "fr"}), "country"),
        (json!({"sector": "not-nace"}), "sector"),
        (json!({"currency": "EURO"}), "currency"),
        (json!({"currency": "XAU"}), "currency"),
        (json!({"credit_limit": "-5.00"}), "credit_limit"),
        (json!({"credit_limit": "1.005"}), "credit_limit"),
        (json!({"credit_limit": "1e3"}), "credit_limit"),
        (json!({"credit_limit": "NaN"}), "credit_limit"),
        (json!({"credit_limit": " 10"}), "credit_limit"),
        (json!({"credit_limit": true}), "credit_limit"),
        (json!({"credit_limit": -5}), "credit_limit"),
        (json!({"credit_limit": "1000000000000000"}), "credit_limit"),
        (json!({"status": "sleeping"}), "status"),
        (
            json!({"registration_number": "a\u{0007}b"}),
            "registration_number",
        ),
    ];
    for (patch, field) in cases {
        let mut body = client_body("EUR", "100.00");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = app.put_json("/v1/clients/C-1", &token, &body).await;
        answer.problem(422, "validation_failed");
        assert!(
            answer.fields().iter().any(|f| f == field),
            "{field}: {}",
            answer.text
        );
    }
    // Raw JSON numbers: exponents and 400 digits.
    for number in ["1e3", "1.5E2", &"9".repeat(400)] {
        let raw = client_body("EUR", "0").to_string().replace(
            "\"credit_limit\":\"0\"",
            &format!("\"credit_limit\":{number}"),
        );
        let answer = app.put_raw("/v1/clients/C-1", &token, &raw).await;
        answer.problem(422, "validation_failed");
        assert_eq!(answer.fields(), ["credit_limit"], "{}", answer.text);
    }
    // Missing required fields and duplicate keys.
    let answer = app
        .put_json("/v1/clients/C-1", &token, &json!({"name": "A"}))
        .await;
    answer.problem(422, "validation_failed");
    let duplicate = r#"{"name":"A","name":"B","country":"FR","currency":"EUR","credit_limit":"1"}"#;
    app.put_raw("/v1/clients/C-1", &token, duplicate)
        .await
        .problem(422, "validation_failed");
    // Several problems at once are all reported.
    let mut body = client_body("EUR", "-1");
    body["country"] = json!("ZZ");
    let answer = app.put_json("/v1/clients/C-1", &token, &body).await;
    assert_eq!(answer.fields(), ["country", "credit_limit"]);
    // None of it wrote anything.
    app.get("/v1/clients/C-1", &token)
        .await
        .problem(404, "not_found");
    assert_eq!(
        app.get("/v1/audit/verify", &token).await.body["records"],
        base
    );
}

async fn rejected_update_leaves_data_as_it_was(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    let (base, _) = app.audit_head().await;
    let created = app
        .put_json("/v1/clients/C-1", &token, &client_body("EUR", "500.00"))
        .await;
    assert_eq!(created.status, 201);
    let mut bad = client_body("EUR", "900.00");
    bad["country"] = json!("QQ");
    app.put_json("/v1/clients/C-1", &token, &bad)
        .await
        .problem(422, "validation_failed");
    let read = app.get("/v1/clients/C-1", &token).await;
    assert_eq!(read.body["credit_limit"], "500.00");
    assert_eq!(read.body["updated_at"], created.body["updated_at"]);
    assert_eq!(
        app.get("/v1/audit/verify", &token).await.body["records"],
        base + 1
    );
}

async fn path_and_query_errors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    let bad_id = app.get("/v1/clients/has%20space", &token).await;
    bad_id.problem(422, "validation_failed");
    assert_eq!(bad_id.fields(), ["client_id"]);
    let long_id = app
        .get(&format!("/v1/clients/{}", "a".repeat(65)), &token)
        .await;
    long_id.problem(422, "validation_failed");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("band=Z", "band"),
        ("status=gone", "status"),
        ("cursor=!!", "cursor"),
    ] {
        let answer = app.get(&format!("/v1/clients?{query}"), &token).await;
        answer.problem(422, "validation_failed");
        assert_eq!(answer.fields(), [field], "{query}");
    }
    app.get("/v1/clients?limit=abc", &token)
        .await
        .problem(422, "validation_failed");
    app.get("/v1/clients?colour=red", &token)
        .await
        .problem(422, "validation_failed");
    app.get("/v1/audit/records/0", &token)
        .await
        .problem(422, "validation_failed");
    app.get("/v1/audit/records/x", &token)
        .await
        .problem(422, "validation_failed");
    app.get("/v1/audit/records/99", &token)
        .await
        .problem(404, "not_found");
}

async fn unknown_routes_and_methods(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    app.get("/v1/nothing-here", &token)
        .await
        .problem(404, "not_found");
    app.call("GET", "/", None, None)
        .await
        .problem(404, "not_found");
    let answer = app
        .call("DELETE", "/v1/clients/C-1", Some(&token), None)
        .await;
    answer.problem(405, "method_not_allowed");
    app.call("POST", "/healthz", None, None)
        .await
        .problem(405, "method_not_allowed");
}

async fn oversized_bodies_are_413(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.body_limit = 4096).await else {
        return;
    };
    let token = app.token(RW);
    let mut body = client_body("EUR", "1");
    body["name"] = json!("x".repeat(5000));
    let answer = app.put_json("/v1/clients/C-1", &token, &body).await;
    answer.problem(413, "payload_too_large");
    app.get("/v1/clients/C-1", &token)
        .await
        .problem(404, "not_found");
}

async fn oversized_default_limit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    let raw = format!("{{\"name\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    app.put_raw("/v1/clients/C-1", &token, &raw)
        .await
        .problem(413, "payload_too_large");
}

on_both_backends!(
    malformed_bodies_are_400,
    invalid_fields_are_422_and_named,
    rejected_update_leaves_data_as_it_was,
    path_and_query_errors,
    unknown_routes_and_methods,
    oversized_bodies_are_413,
    oversized_default_limit,
);
