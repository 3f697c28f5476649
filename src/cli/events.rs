//! `encours events import FILE` (the first load of an ERP's history) and
//! `encours clients rebuild` (the projection replayed from the event log).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use clap::Subcommand;
use serde_json::Value;

use super::open;
use crate::config::Settings;
use crate::domain::ClientId;
use crate::domain::events::MAX_BATCH;
use crate::policy::PolicyEngine;
use crate::service::events::{EventStatus, ingest_at};
use crate::service::policies::{PolicyRegistry, defaults};
use crate::service::rebuild::rebuild_client;
use crate::store::{AnyConnection, ledgers};

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Ingest NDJSON events (one JSON event a line; `-` reads stdin) in batches, exactly as
    /// `POST /v1/events` would; rejected events are listed, and the exit status is non-zero
    /// when there were any.
    Import {
        file: PathBuf,
        /// Events a batch (one transaction each), 1..1000.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Recorded as who sent the events.
        #[arg(long, default_value = "import")]
        actor: String,
    },
}

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Replay the event log of one client (or all) and replace the stored projection where it
    /// differs; says what differed.
    Rebuild {
        #[arg(long)]
        client: Option<String>,
        /// Only compare; exit non-zero when the stored projection differs from the replay.
        #[arg(long)]
        check: bool,
    },
}

pub fn events(command: EventsCommand, settings: Settings) -> Result<(), String> {
    let EventsCommand::Import { file, batch, actor } = command;
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(format!("--batch must be 1 to {MAX_BATCH}"));
    }
    let (_store, mut conn) = open(&settings)?;
    let engine = PolicyEngine::default();
    defaults::seed(&mut conn, &engine).map_err(|e| e.to_string())?;
    let registry = PolicyRegistry::new(engine);
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        Box::new(BufReader::new(
            File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?,
        ))
    };
    let mut import = Import::new(&registry, &actor);
    let mut pending: Vec<(usize, Value)> = Vec::with_capacity(batch);
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(event) => pending.push((i + 1, event)),
            Err(e) => import.refuse(i + 1, &format!("not JSON: {e}")),
        }
        if pending.len() == batch {
            import.send(&mut conn, &mut pending)?;
        }
    }
    import.send(&mut conn, &mut pending)?;
    import.finish()
}

struct Import<'a> {
    registry: &'a PolicyRegistry,
    actor: &'a str,
    started: Instant,
    sent: usize,
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    reviews: usize,
}

impl<'a> Import<'a> {
    fn new(registry: &'a PolicyRegistry, actor: &'a str) -> Self {
        Self {
            registry,
            actor,
            started: Instant::now(),
            sent: 0,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            reviews: 0,
        }
    }

    fn refuse(&mut self, line: usize, why: &str) {
        self.rejected += 1;
        println!("line {line}: rejected: {why}");
    }

    fn send(
        &mut self,
        conn: &mut AnyConnection,
        pending: &mut Vec<(usize, Value)>,
    ) -> Result<(), String> {
        if pending.is_empty() {
            return Ok(());
        }
        let (lines, events): (Vec<usize>, Vec<Value>) = pending.drain(..).unzip();
        let done = ingest_at(conn, self.registry, &events, self.actor, Utc::now())
            .map_err(|e| e.to_string())?;
        for (line, result) in lines.iter().zip(&done.results) {
            match &result.status {
                EventStatus::Accepted => self.accepted += 1,
                EventStatus::Duplicate => self.duplicates += 1,
                EventStatus::Rejected(why) => {
                    let id = result.event_id.as_deref().unwrap_or("-");
                    self.refuse(
                        *line,
                        &format!("{id}: {}: {}", why.code.as_str(), why.detail),
                    );
                }
            }
        }
        self.sent += events.len();
        self.reviews += done.reviews.len();
        let rate = self.sent as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r{} events: {} accepted, {} duplicates, {} rejected, {} reviews ({rate:.0}/s)",
            self.sent, self.accepted, self.duplicates, self.rejected, self.reviews
        );
        io::stderr().flush().ok();
        Ok(())
    }

    fn finish(self) -> Result<(), String> {
        eprintln!();
        if self.rejected > 0 {
            return Err(format!(
                "{} event(s) rejected (listed above)",
                self.rejected
            ));
        }
        Ok(())
    }
}

pub fn clients(command: ClientsCommand, settings: Settings) -> Result<(), String> {
    let ClientsCommand::Rebuild { client, check } = command;
    let (_store, mut conn) = open(&settings)?;
    let ids = match client {
        Some(raw) => vec![ClientId::parse(&raw).map_err(|e| format!("--client: {e}"))?],
        None => all_clients(&mut conn)?,
    };
    let mut differing = 0;
    for id in &ids {
        let done =
            rebuild_client(&mut conn, id, !check, Utc::now()).map_err(|e| format!("{id}: {e}"))?;
        if done.differences.is_empty() {
            println!("{id}: {} events, exact", done.events);
            continue;
        }
        differing += 1;
        let verb = if check { "differs" } else { "rebuilt" };
        println!("{id}: {} events, {verb}:", done.events);
        for d in &done.differences {
            println!("  {d}");
        }
    }
    match (check, differing) {
        (true, n) if n > 0 => Err(format!(
            "{n} of {} client(s) differ from their event log",
            ids.len()
        )),
        _ => Ok(()),
    }
}

fn all_clients(conn: &mut AnyConnection) -> Result<Vec<ClientId>, String> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = ledgers::ids_after(conn, &after, 1_000).map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.clone();
        for id in page {
            all.push(ClientId::parse(&id).map_err(|e| format!("stored client id `{id}`: {e}"))?);
        }
    }
    Ok(all)
}
