//! Tokens: every way a token can be missing, forged, expired or insufficient is a 401 or 403
//! problem, and never reaches the handler.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use encours::auth::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, SECRET, TestApp, client_body};

const PUBLIC_PEM: &str = include_str!("fixtures/rs256_public.pem");
const PRIVATE_PEM: &str = include_str!("fixtures/rs256_private.pem");

pub(crate) fn claims(scope: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: "mallory".into(),
        exp: now + 600,
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
        scope: scope.into(),
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Claims) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn unsigned(claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{body}.")
}

async fn refused(app: &TestApp, token: Option<&str>, code: u16) {
    let answer = app.call("GET", "/v1/clients", token, None).await;
    let expected = if code == 401 {
        "unauthorized"
    } else {
        "forbidden"
    };
    answer.problem(code, expected);
    if code == 401 {
        assert_eq!(answer.headers.get("www-authenticate").unwrap(), "Bearer");
    }
}

async fn bad_tokens_are_401(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let hs = EncodingKey::from_secret(SECRET.as_bytes());
    refused(&app, None, 401).await;
    refused(&app, Some("not-a-jwt"), 401).await;
    refused(&app, Some(""), 401).await;
    refused(&app, Some(&unsigned(&claims("clients:read"))), 401).await;
    let mut expired = claims("clients:read");
    expired.exp = chrono::Utc::now().timestamp() - 3600;
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &expired)), 401).await;
    let mut early = claims("clients:read");
    early.nbf = Some(chrono::Utc::now().timestamp() + 3600);
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &early)), 401).await;
    let other = EncodingKey::from_secret(b"another-secret-another-secret-another");
    refused(
        &app,
        Some(&sign(Algorithm::HS256, &other, &claims("clients:read"))),
        401,
    )
    .await;
    refused(
        &app,
        Some(&sign(Algorithm::HS384, &hs, &claims("clients:read"))),
        401,
    )
    .await;
    let rsa = EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap();
    refused(
        &app,
        Some(&sign(Algorithm::RS256, &rsa, &claims("clients:read"))),
        401,
    )
    .await;
    let huge = format!("{}.{}.x", "a".repeat(9000), "b".repeat(10));
    refused(&app, Some(&huge), 401).await;
    let mut nobody = claims("clients:read");
    nobody.sub = " ".into();
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &nobody)), 401).await;
    // Not a bearer scheme.
    let basic = app
        .http
        .get(format!("{}/v1/clients", app.base))
        .insert_header(("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    // And the good one passes.
    let ok = app
        .call("GET", "/v1/clients", Some(&app.token("clients:read")), None)
        .await;
    assert_eq!(ok.status, 200);
}

async fn missing_scope_is_403(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    refused(&app, Some(&app.token("clients:write decisions:read")), 403).await;
    refused(&app, Some(&app.token("")), 403).await;
    // Scopes are whole words: a prefix does not count.
    refused(&app, Some(&app.token("clients:reader")), 403).await;
    let write_only = app.token("clients:read");
    let answer = app
        .put_json("/v1/clients/C-1", &write_only, &client_body("EUR", "1"))
        .await;
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("clients:write")
    );
    answer.problem(403, "forbidden");
    app.get("/v1/audit/verify", &write_only)
        .await
        .problem(403, "forbidden");
    // Auth is checked before the body: no validation detail leaks to a caller without rights.
    app.put_raw("/v1/clients/C-1", "garbage", "{")
        .await
        .problem(401, "unauthorized");
}

async fn issuer_and_audience_are_checked(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jwt_issuer = Some("https://idp.example".into());
        s.jwt_audience = Some("encours".into());
    })
    .await
    else {
        return;
    };
    let hs = EncodingKey::from_secret(SECRET.as_bytes());
    let mut good = claims("clients:read");
    good.iss = Some("https://idp.example".into());
    good.aud = Some(json!("encours"));
    let ok = app
        .call(
            "GET",
            "/v1/clients",
            Some(&sign(Algorithm::HS256, &hs, &good)),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let mut wrong_iss = good.clone();
    wrong_iss.iss = Some("https://evil.example".into());
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &wrong_iss)), 401).await;
    let mut wrong_aud = good.clone();
    wrong_aud.aud = Some(json!("someone-else"));
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &wrong_aud)), 401).await;
    let mut no_iss = good.clone();
    no_iss.iss = None;
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &no_iss)), 401).await;
    let mut no_aud = good;
    no_aud.aud = None;
    refused(&app, Some(&sign(Algorithm::HS256, &hs, &no_aud)), 401).await;
}

async fn public_key_mode_refuses_key_confusion(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jwt_secret = None;
        s.jwt_public_key = Some(PUBLIC_PEM.into());
    })
    .await
    else {
        return;
    };
    let rsa = EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap();
    let ok = app
        .call(
            "GET",
            "/v1/clients",
            Some(&sign(Algorithm::RS256, &rsa, &claims("clients:read"))),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // HS256 signed with the public key as the secret: the classic confusion attack.
    let confused = EncodingKey::from_secret(PUBLIC_PEM.as_bytes());
    refused(
        &app,
        Some(&sign(Algorithm::HS256, &confused, &claims("clients:read"))),
        401,
    )
    .await;
    let hs = EncodingKey::from_secret(SECRET.as_bytes());
    refused(
        &app,
        Some(&sign(Algorithm::HS256, &hs, &claims("clients:read"))),
        401,
    )
    .await;
    refused(&app, Some(&unsigned(&claims("clients:read"))), 401).await;
}

on_both_backends!(
    bad_tokens_are_401,
    missing_scope_is_403,
    issuer_and_audience_are_checked,
    public_key_mode_refuses_key_confusion,
);
