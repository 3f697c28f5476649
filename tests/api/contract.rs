//! The committed contract is the served one, and covers every route.

use crate::on_both_backends;
use crate::support::{Backend, TestApp};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[test]
fn committed_contract_matches_the_code() {
    let generated = encours::api::openapi::document_json();
    assert!(
        generated == COMMITTED,
        "openapi/openapi.json is stale; regenerate it with:\n  cargo run -- openapi > openapi/openapi.json"
    );
}

#[test]
fn every_operation_documents_its_problems() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path}");
            if op.get("security").is_some() {
                for status in ["401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
}

async fn served_contract_is_the_committed_one(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let served = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(served.status, 200);
    let committed: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(served.body, committed);
}

on_both_backends!(served_contract_is_the_committed_one);
