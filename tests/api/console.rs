//! The auditor console in a real headless Chromium, driven over WebDriver (chromedriver +
//! fantoccini): sign in with a token, open a decision from the log, read its reasons.
//!
//! One backend is enough: the console only calls the API, which every other module tests on
//! both. Without `chromium` and `chromedriver` on PATH the test is skipped with a note, unless
//! `CI=true` (then it fails), as the PostgreSQL runs are. `ENCOURS_CONSOLE_SCREENSHOT=PATH`
//! saves a PNG of the decision view there (that is how `docs/console-decision.png` is made).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, client_body};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SCOPES: &str = "decisions:read clients:read audit:read reviews:write policies:read";

/// `chromedriver --port=N`, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and its driver, or `None` (skip) outside CI.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    match (chromium, on_path("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but chromium or chromedriver is not on PATH: the console test is mandatory in CI"
            )
        }
        _ => {
            eprintln!(
                "skipped: chromium and chromedriver are not on PATH (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

fn start_driver(driver: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn open_browser(driver: &Driver, chromium: &Path) -> Client {
    let caps: Capabilities = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            // Root in a container: no sandbox; no GPU, no /dev/shm.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    }))
    .expect("capabilities");
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session")
}

/// chromedriver's log endpoint: what the page wrote to its console.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// A POST as the ERP's connector would send it.
async fn post(app: &TestApp, path: &str, scopes: &str, body: &Value) -> crate::support::Answer {
    app.post_json(path, &app.token_for("erp-connector", scopes), body)
        .await
}

/// A client with some history (paid once on time, one invoice now 40 days overdue, a weak
/// external score, a sales alert, insured for less than its limit), and an order that comes
/// back conditional: cut to what is available, with a deposit and shorter terms.
async fn a_decision(app: &TestApp) -> Value {
    let mut client = client_body("EUR", "25000.00");
    client["name"] = json!("Boulangeries Martin SAS");
    let created = app
        .put_json("/v1/clients/C-1042", &app.token("clients:write"), &client)
        .await;
    assert!(created.status.is_success(), "{}", created.text);
    let today = chrono::Utc::now().date_naive();
    let days = |n: i64| (today - chrono::Duration::days(n)).to_string();
    let events = json!({"events": [
        {"event_id": "E-0", "client_id": "C-1042", "type": "invoice_issued",
         "occurred_at": format!("{}T10:00:00Z", days(150)), "invoice_id": "F-0990",
         "amount": "2100.00", "issued_on": days(150), "due_on": days(105)},
        {"event_id": "E-00", "client_id": "C-1042", "type": "payment_received",
         "occurred_at": format!("{}T10:00:00Z", days(107)), "invoice_id": "F-0990",
         "amount": "2100.00", "received_on": days(107)},
        {"event_id": "E-1", "client_id": "C-1042", "type": "insurance_cover_changed",
         "occurred_at": format!("{}T09:00:00Z", days(90)), "insurer": "Allianz Trade",
         "insured_amount": "8000.00", "valid_until": "2027-06-30"},
        {"event_id": "E-2", "client_id": "C-1042", "type": "invoice_issued",
         "occurred_at": format!("{}T10:00:00Z", days(80)), "invoice_id": "F-1001",
         "amount": "3200.00", "issued_on": days(80), "due_on": days(40)},
        {"event_id": "E-3", "client_id": "C-1042", "type": "external_score_updated",
         "occurred_at": format!("{}T08:00:00Z", days(10)), "provider": "Ellisphere",
         "score": 35, "as_of": days(10)},
        {"event_id": "E-4", "client_id": "C-1042", "type": "sales_alert",
         "occurred_at": format!("{}T15:00:00Z", days(3)), "sentiment": "negative",
         "note": "Asked to postpone the last delivery"},
    ]});
    let ingested = post(app, "/v1/events", "events:write", &events).await;
    assert_eq!(ingested.status, 200, "{}", ingested.text);
    let order = json!({
        "request_id": "order-7731", "client_id": "C-1042", "amount": "12000.00",
        "currency": "EUR", "requested_terms_days": 75, "channel": "erp", "order_ref": "SO-7731"
    });
    let decided = post(app, "/v1/credit-decisions", "decisions:write", &order).await;
    assert_eq!(decided.status, 201, "{}", decided.text);
    decided.body
}

#[actix_web::test]
async fn console_shows_a_decision_and_its_reasons() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite app");

    // The page and its files carry the policy that forbids inline and foreign code.
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let page = app.call("GET", path, None, None).await;
        assert_eq!(page.status, 200, "{path}");
        let header = |name: &str| {
            page.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-security-policy"), CSP, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(header("content-type").starts_with(content_type), "{path}");
    }
    app.call("GET", "/console/nope.js", None, None)
        .await
        .problem(404, "not_found");

    let decision = a_decision(&app).await;
    let token = app.token_for("auditor", SCOPES);

    let driver = start_driver(&chromedriver);
    let browser = open_browser(&driver, &chromium).await;
    let result = drive(&browser, &app, &token, &decision).await;
    let _ = browser.close().await;
    if let Err(e) = result {
        panic!("{e}");
    }
}

type Outcome = Result<(), Box<dyn std::error::Error>>;

fn check(ok: bool, what: impl Into<String>) -> Outcome {
    if ok { Ok(()) } else { Err(what.into().into()) }
}

/// The browser's part; errors are returned (not panicked) so the session is always closed.
async fn drive(b: &Client, app: &TestApp, token: &str, decision: &Value) -> Outcome {
    let wait = |locator: &'static str| {
        b.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(locator))
    };
    // A 1280x900 viewport: the window is that plus the browser's own frame.
    b.set_window_size(1280, 900).await?;
    let frame = b
        .execute("return window.outerHeight - window.innerHeight;", vec![])
        .await?
        .as_u64()
        .unwrap_or(0);
    b.set_window_size(1280, 900 + u32::try_from(frame)?).await?;
    b.goto(&format!("{}/console", app.base)).await?;

    // No token yet: the token screen; the pasted token's claims are shown before use.
    wait("#token-input").await?.send_keys(token).await?;
    let sub = wait("#token-sub").await?.text().await?;
    check(sub == "auditor", format!("decoded sub: {sub}"))?;
    let scopes = b.find(Locator::Css("#token-scopes")).await?.text().await?;
    check(
        scopes.contains("audit:read"),
        format!("decoded scopes: {scopes}"),
    )?;
    b.find(Locator::Css("#token-submit")).await?.click().await?;

    // The log lists the decision; open it from there.
    let id = decision["decision_id"].as_str().unwrap_or_default();
    let row_link = format!("a[href='#/decision/{id}']");
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&row_link))
        .await?
        .click()
        .await?;

    let codes = texts(b, ".reason-code").await?;
    let messages = texts(b, ".reason-message").await?;
    let reasons = decision["reasons"].as_array().cloned().unwrap_or_default();
    check(!reasons.is_empty(), "the decision has reasons")?;
    for reason in &reasons {
        let code = reason["code"].as_str().unwrap_or_default();
        let message = reason["message"].as_str().unwrap_or_default();
        check(
            codes.iter().any(|c| c == code),
            format!("{code} not in {codes:?}"),
        )?;
        check(
            messages.iter().any(|m| m == message),
            format!("{message} not in {messages:?}"),
        )?;
    }
    // The audit record's trace is rendered too (one block per policy stage).
    wait(".stage").await?;

    // The token lives in this tab's sessionStorage only.
    let storage = b
        .execute(
            "return [sessionStorage.length, localStorage.length, document.cookie];",
            vec![],
        )
        .await?;
    check(storage == json!([1, 0, ""]), format!("storage: {storage}"))?;

    if let Ok(path) = std::env::var("ENCOURS_CONSOLE_SCREENSHOT") {
        std::fs::write(&path, b.screenshot().await?)?;
        eprintln!("screenshot saved to {path}");
    }

    // Replayed with the policy versions it names, it gives the recorded decision.
    b.find(Locator::XPath(
        "//button[text()='Replay with the recorded policies']",
    ))
    .await?
    .click()
    .await?;
    let replay = wait("#replay-result").await?;
    check(
        replay.attr("class").await?.as_deref() == Some("note ok"),
        format!("replay: {}", replay.text().await?),
    )?;

    // The client behind it, with its event history; then the (empty) review queue.
    b.find(Locator::Css(".title a[href='#/client/C-1042']"))
        .await?
        .click()
        .await?;
    let name = wait(".view-client h1").await?.text().await?;
    check(
        name == "Boulangeries Martin SAS",
        format!("client name: {name}"),
    )?;
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath("//td[text()='E-3']"))
        .await?;
    b.find(Locator::Css("a[data-route='reviews']"))
        .await?
        .click()
        .await?;
    let empty = wait(".view-reviews .empty").await?.text().await?;
    check(
        empty.contains("queue is empty"),
        format!("review queue: {empty}"),
    )?;

    // The audit view: the chain verifies, and the decision's record is listed.
    b.find(Locator::Css("a[data-route='audit']"))
        .await?
        .click()
        .await?;
    // The view renders after the click: wait for its button, as for every other element.
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath("//button[text()='Verify chain']"))
        .await?
        .click()
        .await?;
    let verified = wait("#verify-result").await?;
    check(
        verified.attr("class").await?.as_deref() == Some("note ok"),
        format!("verify: {}", verified.text().await?),
    )?;
    let sequence = decision["audit"]["sequence"].as_i64().unwrap_or_default();
    let record = format!("//a[text()='#{sequence}']");
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(&record))
        .await?;

    let log = b.issue_cmd(BrowserLog).await?;
    let severe: Vec<&Value> = log
        .as_array()
        .map(|entries| entries.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    check(severe.is_empty(), format!("console errors: {severe:?}"))?;

    backtest_step(b, app, decision).await?;

    // Signing out forgets the token and shows the token screen.
    b.find(Locator::Css("#who button")).await?.click().await?;
    wait("#token-input").await?;
    let left = b.execute("return sessionStorage.length;", vec![]).await?;
    check(
        left == json!(0),
        format!("sessionStorage after sign-out: {left}"),
    )
}

/// The Policies view: a deposit draft backtested on the decision, which it changes when that
/// paid a deposit; the changed decision links to its page. The shadow panel says there is
/// no shadow run.
async fn backtest_step(b: &Client, app: &TestApp, decision: &Value) -> Outcome {
    let wait = |locator: String| async move {
        b.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(&locator))
            .await
    };
    let deposit = app
        .get("/v1/policies/deposit", &app.token("policies:read"))
        .await;
    let source = deposit.body["versions"][0]["source"]
        .as_str()
        .unwrap_or_default()
        .replace("DEPOSIT_BAND_D = 30", "DEPOSIT_BAND_D = 40")
        .replace("DEPOSIT_BAND_E = 50", "DEPOSIT_BAND_E = 60")
        .replace("DEPOSIT_PROSPECT = 20", "DEPOSIT_PROSPECT = 25");
    // The cases that pin a deposit percent would fail: the draft keeps the others.
    let tests: Vec<Value> = deposit.body["versions"][0]["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|case| {
            !case.to_string().contains("DEPOSIT") && !case.to_string().contains("is_prospect")
        })
        .cloned()
        .collect();
    let body = json!({"source": source, "description": "higher deposits", "tests": tests});
    let draft = post(
        app,
        "/v1/policies/deposit/versions",
        "policies:write",
        &body,
    )
    .await;
    check(draft.status == 201, format!("draft: {}", draft.text))?;
    let version = draft.body["version"].as_i64().unwrap_or_default();
    let changes = usize::from(decision["deposit"].is_object());

    b.find(Locator::Css("a[data-route='policies']"))
        .await?
        .click()
        .await?;
    wait(format!("a[href='#/policy/deposit/{version}']"))
        .await?
        .click()
        .await?;
    wait("#backtest-run".into()).await?.click().await?;
    let summary = wait("#backtest-summary".into()).await?.text().await?;
    check(
        summary.starts_with(&format!("{changes} of 1 decisions would change")),
        format!("backtest summary: {summary}"),
    )?;
    wait("#outcome-matrix".into()).await?;
    let shadow = wait("#shadow-report .empty".into()).await?.text().await?;
    check(
        shadow.contains("no shadow run"),
        format!("shadow: {shadow}"),
    )?;
    if changes == 1 {
        let id = decision["decision_id"].as_str().unwrap_or_default();
        wait(format!("#backtest-result a[href='#/decision/{id}']"))
            .await?
            .click()
            .await?;
        wait(".view-decision .reason-code".into()).await?;
    }
    Ok(())
}

async fn texts(b: &Client, css: &'static str) -> Result<Vec<String>, fantoccini::error::CmdError> {
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await?;
    let mut out = Vec::new();
    for e in b.find_all(Locator::Css(css)).await? {
        out.push(e.text().await?);
    }
    Ok(out)
}
