//! Process drills: the real `encours serve` binary under a load of decisions and events is
//! killed (SIGKILL, 20 times per backend) or asked to stop (SIGTERM). Afterwards everything it
//! acknowledged is there, nothing is half-written (every decision has its audit record and its
//! reservation), reservations equal the sum of live decisions, the chain verifies and the live
//! state equals its rebuild from the event log.

mod outage;
mod shutdown;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use encours::auth::{Claims, SCOPES};
use futures_util::future::join_all;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, SECRET, TestApp, client_body};

const KILLS: usize = 20;
const WORKERS: usize = 6;
const CLIENTS: usize = 8;

fn token() -> String {
    let claims = Claims {
        sub: "drill".into(),
        exp: chrono::Utc::now().timestamp() + 3600,
        nbf: None,
        iat: None,
        iss: None,
        aud: None,
        scope: SCOPES.join(" "),
    };
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// The service as a separate process on `database_url`, ready to answer.
async fn serve(database_url: &str) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_encours"))
        .arg("serve")
        .env("ENCOURS_DATABASE_URL", database_url)
        .env("ENCOURS_BIND", format!("127.0.0.1:{port}"))
        .env("ENCOURS_JWT_SECRET", SECRET)
        .env("ENCOURS_WORKERS", "2")
        .env("ENCOURS_LOG", "json")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start encours serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = awc::Client::default();
    for _ in 0..300 {
        if let Ok(res) = http.get(format!("{base}/readyz")).send().await
            && res.status() == 200
        {
            return (child, base);
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("encours serve did not become ready");
}

/// A request that got no answer: why, and the request, to find out later whether the server
/// had taken it.
struct Unanswered {
    why: String,
    path: &'static str,
    body: Value,
}

/// What the server acknowledged before it died.
#[derive(Default)]
struct Acked {
    /// 503 answers (the database was away).
    unavailable: usize,
    /// Requests sent that got no answer (the server died, or refused the connection).
    unanswered: Vec<Unanswered>,
    /// Answers to requests sent before the server was told to stop that arrived after it
    /// (requests in flight, finished).
    answered_after_stop: usize,
    /// decision_id → (request body, approved amount)
    decisions: BTreeMap<String, (Value, String)>,
    /// event_id → client_id
    events: BTreeMap<String, String>,
}

/// One client of the load: decisions, and now and then a batch of invoices, until the server
/// stops answering.
async fn worker(
    base: String,
    round: usize,
    w: usize,
    acked: Rc<Cell<Acked>>,
    stopping: Rc<Cell<bool>>,
) {
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let auth = format!("Bearer {}", token());
    for i in 0.. {
        // Like a load balancer draining an instance: nothing new once it is told to stop.
        if stopping.get() {
            return;
        }
        let client = format!("K-{}", (w + i) % CLIENTS);
        let (path, body) = if i % 4 == 3 {
            let events: Vec<Value> = (0..5)
                .map(|e| {
                    json!({
                        "event_id": format!("ev-{round}-{w}-{i}-{e}"), "client_id": client,
                        "type": "invoice_issued", "occurred_at": "2026-11-20T10:00:00Z",
                        "invoice_id": format!("inv-{round}-{w}-{i}-{e}"), "amount": "15.00",
                        "issued_on": "2026-11-20", "due_on": "2027-01-20"
                    })
                })
                .collect();
            ("/v1/events", json!({ "events": events }))
        } else {
            let amount = format!("{}.{:02}", 20 + (i * 37 + w * 11) % 400, i % 100);
            (
                "/v1/credit-decisions",
                json!({
                    "request_id": format!("rq-{round}-{w}-{i}"), "client_id": client,
                    "amount": amount, "currency": "EUR", "requested_terms_days": 30,
                    "channel": "erp"
                }),
            )
        };
        let sent = http
            .post(format!("{base}{path}"))
            .insert_header(("Authorization", auth.as_str()))
            .send_json(&body)
            .await;
        let answer = match sent {
            Ok(mut res) => match res.body().await {
                Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                    .map(|answer| {
                        let retry_after = res.headers().contains_key("retry-after");
                        (res.status().as_u16(), retry_after, answer)
                    })
                    .map_err(|e| format!("body: {e}")),
                Err(e) => Err(format!("payload: {e}")),
            },
            Err(e) => Err(format!("send: {e:?}")),
        };
        let mut state = acked.take();
        let (status, retry_after, answer) = match answer {
            Ok(answered) => answered,
            Err(why) => {
                state.unanswered.push(Unanswered { why, path, body });
                acked.set(state);
                return;
            }
        };
        if stopping.get() {
            state.answered_after_stop += 1;
        }
        match (path, status) {
            ("/v1/credit-decisions", 201 | 200) => {
                state.decisions.insert(
                    answer["decision_id"].as_str().unwrap().to_owned(),
                    (body, answer["approved_amount"].as_str().unwrap().to_owned()),
                );
            }
            ("/v1/events", 200) => {
                for r in answer["results"].as_array().unwrap() {
                    if r["status"] == "accepted" || r["status"] == "duplicate" {
                        state
                            .events
                            .insert(r["event_id"].as_str().unwrap().to_owned(), client.clone());
                    }
                }
            }
            (_, 503) => {
                // The database is away: a problem saying so, and when to come back.
                assert_eq!(answer["code"], "service_unavailable", "{answer}");
                assert!(retry_after, "503 without Retry-After");
                state.unavailable += 1;
            }
            (_, status) => panic!("{path}: {status} {answer}"),
        }
        acked.set(state);
        if status == 503 {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn pages(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.get(&format!("{path}&limit=500{cursor}"), token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return items,
        }
    }
}

/// A database with clients set up through the API only (a profile, then cover and a score as
/// events), so that the live state must equal its rebuild from the event log.
async fn book(backend: Backend) -> Option<TestApp> {
    let app = TestApp::spawn(backend).await?;
    set_up(&app).await;
    Some(app)
}

async fn set_up(app: &TestApp) {
    let token = app.token(&SCOPES.join(" "));
    for c in 0..CLIENTS {
        let client = format!("K-{c}");
        let created = app
            .put_json(
                &format!("/v1/clients/{client}"),
                &token,
                &client_body("EUR", "250000.00"),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let facts = json!({"events": [
            {"event_id": format!("{client}-cover"), "client_id": client, "type": "insurance_cover_changed",
             "occurred_at": "2026-11-01T09:00:00Z", "insurer": "Allianz Trade",
             "insured_amount": "200000.00", "valid_until": "2027-12-31"},
            {"event_id": format!("{client}-score"), "client_id": client, "type": "external_score_updated",
             "occurred_at": "2026-11-01T09:00:00Z", "provider": "Ellisphere", "score": 82,
             "as_of": "2026-11-01"}]});
        let answer = app.post_json("/v1/events", &token, &facts).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
}

/// One round: a fresh server process under load until `stop` ends it.
async fn round<F, Fut>(url: &str, round: usize, acked: &Rc<Cell<Acked>>, stop: F)
where
    F: FnOnce(Child) -> Fut,
    Fut: std::future::Future<Output = Child>,
{
    let (child, base) = serve(url).await;
    let stopping = Rc::new(Cell::new(false));
    let workers = (0..WORKERS).map(|w| {
        worker(
            base.clone(),
            round,
            w,
            Rc::clone(acked),
            Rc::clone(&stopping),
        )
    });
    let stopper = async {
        let after = rand::random_range(100..500);
        actix_web::rt::time::sleep(Duration::from_millis(after)).await;
        stopping.set(true);
        stop(child).await
    };
    let (_, mut child) = futures_util::future::join(join_all(workers), stopper).await;
    let _ = child.wait();
}

async fn nothing_acknowledged_is_lost_when_killed(backend: Backend) {
    let Some(app) = book(backend).await else {
        return;
    };
    let url = app.state.settings.database_url.clone();
    let acked = Rc::new(Cell::new(Acked::default()));
    for r in 0..KILLS {
        round(&url, r, &acked, |mut child| async move {
            child.kill().expect("SIGKILL");
            child
        })
        .await;
    }
    let acked = acked.take();
    eprintln!(
        "{KILLS} kills survived; {} decisions and {} events acknowledged",
        acked.decisions.len(),
        acked.events.len()
    );
    assert!(acked.decisions.len() > KILLS, "the load did run");
    all_there(&app, &url, &acked).await;
}

/// Through one more server process: everything acknowledged is there and consistent.
async fn all_there(app: &TestApp, url: &str, acked: &Acked) {
    let (mut child, _) = serve(url).await;
    let token = app.token(&SCOPES.join(" "));
    for (id, (_, approved)) in &acked.decisions {
        let stored = app.get(&format!("/v1/credit-decisions/{id}"), &token).await;
        assert_eq!(stored.status, 200, "acknowledged decision {id} lost");
        assert_eq!(&stored.body["approved_amount"], approved);
    }
    let (id, (body, _)) = acked.decisions.iter().next().unwrap();
    let retry = crate::decisions::decide(app, body).await;
    assert_eq!(retry.status, 200, "a retry after the crash: {}", retry.text);
    assert_eq!(retry.body["decision_id"], id.as_str());
    let mut decisions_stored = 0;
    for c in 0..CLIENTS {
        let client = format!("K-{c}");
        let events = pages(
            app,
            &token,
            &format!("/v1/clients/{client}/events?type=invoice_issued"),
        )
        .await;
        let stored: Vec<&str> = events
            .iter()
            .map(|e| e["event"]["event_id"].as_str().unwrap())
            .collect();
        for (event, owner) in &acked.events {
            if owner == &client {
                assert!(
                    stored.contains(&event.as_str()),
                    "acknowledged event {event} lost"
                );
            }
        }
        let decisions = pages(
            app,
            &token,
            &format!("/v1/credit-decisions?client_id={client}"),
        )
        .await;
        decisions_stored += decisions.len();
        let reserved: Decimal = decisions
            .iter()
            .filter(|d| matches!(d["outcome"].as_str(), Some("approved" | "conditional")))
            .map(|d| {
                d["approved_amount"]
                    .as_str()
                    .unwrap()
                    .parse::<Decimal>()
                    .unwrap()
            })
            .sum();
        let state = app.get(&format!("/v1/clients/{client}"), &token).await;
        let shown: Decimal = state.body["exposure"]["reserved"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            shown, reserved,
            "{client}: reservations equal live decisions"
        );
    }
    let records = pages(app, &token, "/v1/audit/records?kind=decision").await;
    assert_eq!(
        records.len(),
        decisions_stored,
        "every decision has its audit record"
    );
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
    child.kill().expect("stop");
    child.wait().expect("reaped");
    let rebuild = Command::new(env!("CARGO_BIN_EXE_encours"))
        .args(["clients", "rebuild", "--check"])
        .env("ENCOURS_DATABASE_URL", url)
        .output()
        .expect("rebuild");
    assert!(
        rebuild.status.success(),
        "live state equals its rebuild: {}{}",
        String::from_utf8_lossy(&rebuild.stdout),
        String::from_utf8_lossy(&rebuild.stderr)
    );
}

on_both_backends!(nothing_acknowledged_is_lost_when_killed);
