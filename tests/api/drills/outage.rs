//! A PostgreSQL outage under load: while the database is down, requests get a 503
//! `service_unavailable` with `Retry-After` and `/readyz` says 503; when it is back, the same
//! server process recovers by itself, and nothing was half-written. PostgreSQL only (an
//! embedded SQLite file cannot go away); the drill runs its own throwaway cluster, since it
//! stops it.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{Acked, WORKERS, all_there, serve, set_up, worker};
use crate::on_both_backends;
use crate::support::{Backend, TestApp, postgres_admin_url};

/// A cluster of our own, from `.ci/pg`, removed on drop.
struct Cluster {
    dir: String,
    url: String,
}

fn pg(args: &[&str]) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/pg"))
        .args(args)
        .output()
        .expect(".ci/pg");
    assert!(
        out.status.success(),
        ".ci/pg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    fn start() -> Self {
        let text = pg(&["start"]);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {key}=")))
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .to_owned()
        };
        Self {
            dir: value("PG_TMP"),
            url: value("ENCOURS_TEST_POSTGRES_URL"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        pg(&["stop", &self.dir]);
    }
}

async fn blocking_pg(args: [&'static str; 1], dir: String) {
    tokio::task::spawn_blocking(move || pg(&[args[0], &dir]))
        .await
        .expect("pg");
}

async fn readyz(base: &str) -> u16 {
    awc::Client::default()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn an_outage_is_a_503_and_heals_by_itself(backend: Backend) {
    if backend != Backend::Postgres || postgres_admin_url().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url.clone();
    let Some(app) = TestApp::spawn_with(backend, |s| s.database_url = url).await else {
        return;
    };
    set_up(&app).await;
    let (mut child, base) = serve(&cluster.url).await;
    let acked = Rc::new(Cell::new(Acked::default()));
    let stopping = Rc::new(Cell::new(false));
    let workers =
        (0..WORKERS).map(|w| worker(base.clone(), 0, w, Rc::clone(&acked), Rc::clone(&stopping)));
    let drill = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        blocking_pg(["pause"], cluster.dir.clone()).await;
        let down = Instant::now();
        actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
        let ready_while_down = readyz(&base).await;
        let seen = acked.take();
        let unavailable = seen.unavailable;
        let before = seen.decisions.len();
        acked.set(seen);
        blocking_pg(["resume"], cluster.dir.clone()).await;
        let outage = down.elapsed();
        // Recovered when decisions are acknowledged again, with no restart.
        let mut recovered = false;
        for _ in 0..300 {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            let seen = acked.take();
            let now = seen.decisions.len();
            acked.set(seen);
            if now > before + WORKERS {
                recovered = true;
                break;
            }
        }
        let ready_after = readyz(&base).await;
        stopping.set(true);
        (
            ready_while_down,
            unavailable,
            outage,
            recovered,
            ready_after,
        )
    };
    let (_, (ready_while_down, unavailable, outage, recovered, ready_after)) =
        futures_util::future::join(join_all(workers), drill).await;
    let acked = acked.take();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "outage of {} ms: {unavailable} requests answered 503 with Retry-After, /readyz {ready_while_down}; \
         recovered: {recovered}, /readyz {ready_after}; {} decisions and {} events acknowledged",
        outage.as_millis(),
        acked.decisions.len(),
        acked.events.len()
    );
    assert_eq!(ready_while_down, 503, "/readyz while the database is down");
    assert!(unavailable > 0, "the outage was answered with 503s");
    assert!(recovered, "decisions are taken again without a restart");
    assert_eq!(ready_after, 200, "/readyz once the database is back");
    let refused: Vec<&String> = acked
        .unanswered
        .iter()
        .map(|u| &u.why)
        .filter(|why| !why.contains("Timeout"))
        .collect();
    assert!(
        refused.is_empty(),
        "every request was answered: {refused:?}"
    );
    all_there(&app, &cluster.url, &acked).await;
}

on_both_backends!(an_outage_is_a_503_and_heals_by_itself);
