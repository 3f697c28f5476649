//! Token attacks on every protected route, generated from the contract itself: whatever route
//! is added, it is refused without a valid token carrying its scope, and nothing is written.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use encours::auth::{Claims, SCOPES};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::auth::claims;
use crate::on_both_backends;
use crate::support::{Backend, SECRET, TestApp, operations};

const RSA_PRIVATE_PEM: &str = include_str!("fixtures/rs256_private.pem");

/// A protected operation of the contract: method, a concrete path, the scopes it needs.
struct Route {
    method: String,
    path: String,
    scopes: Vec<String>,
}

/// Every operation with a bearer requirement (the token is checked before anything else).
fn protected_routes() -> Vec<Route> {
    operations()
        .into_iter()
        .filter_map(|(method, path, op)| {
            let scopes = op["security"][0]["bearer"].as_array()?;
            Some(Route {
                method,
                path,
                scopes: scopes
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect(),
            })
        })
        .collect()
}

fn hs256(claims: &Claims) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// Tokens that must never pass, each with every scope.
fn forged_tokens() -> Vec<(&'static str, String)> {
    let all = SCOPES.join(" ");
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&all)).unwrap());
    let none = format!(
        "{}.{body}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let mut expired = claims(&all);
    expired.exp = chrono::Utc::now().timestamp() - 120;
    let mut early = claims(&all);
    early.nbf = Some(chrono::Utc::now().timestamp() + 3600);
    let mut kid = Header::new(Algorithm::HS256);
    kid.kid = Some("../../etc/passwd".into());
    let wrong_key = EncodingKey::from_secret(b"not-the-secret-not-the-secret-not-the");
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
    vec![
        ("alg none", none),
        ("expired", hs256(&expired)),
        ("not yet valid", hs256(&early)),
        (
            "forged kid, wrong key",
            jsonwebtoken::encode(&kid, &claims(&all), &wrong_key).unwrap(),
        ),
        (
            "RS256 where HS256 is configured",
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(&all), &rsa).unwrap(),
        ),
        ("oversized", format!("{}.{}.sig", "e".repeat(10_000), body)),
        ("garbage", "a.b.c".into()),
    ]
}

async fn every_route_refuses_forged_and_insufficient_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (head, _) = app.audit_head().await;
    let routes = protected_routes();
    assert!(routes.len() >= 20, "{} protected routes", routes.len());
    let body = Some(("application/json", b"{}".to_vec()));
    let mut refused = 0;
    for route in &routes {
        let call = |token: Option<String>| {
            let body = if route.method == "GET" {
                None
            } else {
                body.clone()
            };
            let (method, path) = (route.method.clone(), route.path.clone());
            let app = &app;
            async move { app.call(&method, &path, token.as_deref(), body).await }
        };
        let what = format!("{} {}", route.method, route.path);
        let answer = call(None).await;
        answer.problem(401, "unauthorized");
        assert_eq!(
            answer.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{what}"
        );
        refused += 1;
        for (attack, token) in forged_tokens() {
            let answer = call(Some(token)).await;
            assert_eq!(answer.status, 401, "{what} with {attack}: {}", answer.text);
            answer.problem(401, "unauthorized");
            refused += 1;
        }
        // A valid token for every other scope, and one for each other scope alone.
        let others: Vec<&str> = SCOPES
            .iter()
            .copied()
            .filter(|s| !route.scopes.iter().any(|r| r == s))
            .collect();
        let answer = call(Some(hs256(&claims(&others.join(" "))))).await;
        assert_eq!(
            answer.status, 403,
            "{what} with {others:?}: {}",
            answer.text
        );
        answer.problem(403, "forbidden");
        refused += 1;
        for scope in &others {
            let answer = call(Some(hs256(&claims(scope)))).await;
            assert_eq!(answer.status, 403, "{what} with {scope}: {}", answer.text);
            refused += 1;
        }
    }
    eprintln!(
        "{refused} attacks refused on {} protected routes",
        routes.len()
    );
    let (after, _) = app.audit_head().await;
    assert_eq!(after, head, "nothing was written");
}

on_both_backends!(every_route_refuses_forged_and_insufficient_tokens);
