//! Graceful shutdown: SIGTERM under load lets the requests in flight finish, the process exits
//! cleanly, and nothing it acknowledged is lost.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Acked, all_there, book, round};
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
    // A request that could not even get a connection (the listener closed, or an idle
    // keep-alive connection was closed under it) never reached the server; any other failure
    // means the server dropped a request it had received.
    let dropped: Vec<&String> = acked
        .unanswered
        .iter()
        .filter(|why| !why.starts_with("send: Connect("))
        .collect();
    assert!(
        dropped.is_empty(),
        "requests received before SIGTERM went unanswered: {dropped:?}"
    );
    all_there(&app, &url, &acked).await;
}

on_both_backends!(sigterm_finishes_what_is_in_flight);
