//! Hostile bodies on every operation that takes one, generated from the contract: deep nesting,
//! huge arrays and strings, 400-digit numbers, duplicate keys, invalid UTF-8 — each a clean 4xx
//! problem, nothing written, and the server still answering.

use encours::auth::SCOPES;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, operations};

/// Operations with a request body.
fn body_routes() -> Vec<(String, String)> {
    operations()
        .into_iter()
        .filter(|(_, _, op)| op.get("requestBody").is_some())
        .map(|(method, path, _)| (method, path))
        .collect()
}

fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let wide = format!("[{}]", vec!["0"; 10_000].join(","));
    let wide_field = format!(
        "{{\"events\":[{}],\"name\":[{}]}}",
        vec!["{}"; 10_000].join(","),
        vec!["1"; 10_000].join(",")
    );
    let long_number = format!(
        "{{\"amount\":{},\"credit_limit\":{}}}",
        "9".repeat(400),
        "9".repeat(400)
    );
    let huge_string = format!(
        "{{\"name\":\"{}\",\"source\":\"{}\"}}",
        "x".repeat(400_000),
        "y".repeat(400_000)
    );
    vec![
        ("10,000 nested arrays", deep_arrays.into_bytes()),
        ("10,000 nested objects", deep_objects.into_bytes()),
        ("a 10,000-element array", wide.into_bytes()),
        ("10,000-element fields", wide_field.into_bytes()),
        ("400-digit numbers", long_number.into_bytes()),
        ("800 kB of strings", huge_string.into_bytes()),
        (
            "duplicate keys",
            br#"{"name":"A","name":"B","events":[],"events":[],"source":"1","source":"2"}"#
                .to_vec(),
        ),
        (
            "invalid UTF-8",
            vec![b'{', b'"', b'n', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        ),
        ("NaN", br#"{"amount":NaN}"#.to_vec()),
        ("null", b"null".to_vec()),
        ("empty", Vec::new()),
    ]
}

async fn every_body_refuses_hostile_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(&SCOPES.join(" "));
    let (head, _) = app.audit_head().await;
    let routes = body_routes();
    assert!(routes.len() >= 6, "{} operations take a body", routes.len());
    let mut refused = 0;
    for (method, path) in &routes {
        for (what, body) in hostile_bodies() {
            let answer = app
                .call(method, path, Some(&token), Some(("application/json", body)))
                .await;
            assert!(
                answer.status.is_client_error(),
                "{method} {path} with {what}: {} {}",
                answer.status,
                answer.text
            );
            assert_eq!(
                answer.headers.get("content-type").unwrap(),
                "application/problem+json",
                "{method} {path} with {what}"
            );
            assert!(
                answer.body["detail"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} with {what}: says what is wrong: {}",
                answer.text
            );
            refused += 1;
        }
    }
    eprintln!(
        "{refused} hostile bodies refused on {} operations",
        routes.len()
    );
    let (after, _) = app.audit_head().await;
    assert_eq!(after, head, "nothing was written");
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "still answering");
}

on_both_backends!(every_body_refuses_hostile_input);
