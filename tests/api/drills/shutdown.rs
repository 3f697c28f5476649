//! Graceful shutdown: SIGTERM under load lets the requests in flight finish, the process exits
//! cleanly, and nothing it acknowledged is lost.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Acked, SCOPES, all_there, book, round};
use crate::on_both_backends;
use crate::support::Backend;

const STOPS: usize = 5;

async fn sigterm_finishes_what_is_in_flight(backend: Backend) {
    let Some(app) = book(backend).await else {
        return;
    };
    let url = app.state.settings.database_url.clone();
    let acked = Rc::new(Cell::new(Acked::default()));
    let exits = Rc::new(Cell::new(0));
    for r in 0..STOPS {
        let exits = Rc::clone(&exits);
        round(&url, r, &acked, |mut child| async move {
            let term = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill -TERM");
            assert!(term.success());
            let asked = Instant::now();
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    assert!(status.success(), "a clean exit on SIGTERM: {status}");
                    exits.set(exits.get() + 1);
                    break;
                }
                assert!(
                    asked.elapsed() < Duration::from_secs(40),
                    "still running 40 s after SIGTERM"
                );
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            child
        })
        .await;
    }
    let acked = acked.take();
    eprintln!(
        "{STOPS} graceful stops; {} decisions and {} events acknowledged, {} answers after SIGTERM, \
         {} requests refused a connection",
        acked.decisions.len(),
        acked.events.len(),
        acked.answered_after_stop,
        acked.unanswered.len()
    );
    assert_eq!(exits.get(), STOPS);
    assert!(
        acked.answered_after_stop > 0,
        "requests in flight at SIGTERM were answered"
    );
    // A request that got no answer is a dropped one only if the server had taken it: one that
    // could not get a connection (the listener closed, or an idle keep-alive connection was
    // closed under it), or whose connection was still in the listener's backlog when it
    // closed (reset, never accepted), never reached it. Sent again, a request the server had
    // taken is recognised (a decision's request id answers 200, an event is a duplicate).
    let token = app.token(&SCOPES.join(" "));
    let mut dropped = Vec::new();
    for u in acked
        .unanswered
        .iter()
        .filter(|u| !u.why.starts_with("send: Connect("))
    {
        let again = app.post_json(u.path, &token, &u.body).await;
        assert!(
            again.status == 200 || again.status == 201,
            "{}: {}",
            u.path,
            again.text
        );
        let taken = match u.path {
            "/v1/credit-decisions" => again.status == 200,
            _ => again.body["results"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["status"] == "duplicate")),
        };
        if taken {
            dropped.push(&u.why);
        }
    }
    assert!(
        dropped.is_empty(),
        "requests the server had taken before SIGTERM went unanswered: {dropped:?}"
    );
    all_there(&app, &url, &acked).await;
}

on_both_backends!(sigterm_finishes_what_is_in_flight);
