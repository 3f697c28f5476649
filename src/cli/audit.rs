//! `encours audit verify | replay | export`: the auditor's checks from a shell, on the
//! database the service uses, with the same code as the API.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::open;
use crate::audit;
use crate::config::Settings;
use crate::policy::PolicyEngine;
use crate::service::audit::export::{Export, Format};
use crate::service::audit::{self as service, Replay};
use crate::service::policies::PolicyRegistry;
use crate::store::audit::RecordFilter;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exits non-zero and names the first broken record if any.
    Verify,
    /// Re-run recorded decisions with their recorded policy versions on their recorded input;
    /// exits non-zero when any differs.
    Replay {
        /// The sequence of one `decision` record.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        sequence: Option<i64>,
        /// Every recorded decision.
        #[arg(long)]
        all: bool,
    },
    /// Write the log (up to its head when the export starts) as NDJSON or CSV.
    Export {
        /// `ndjson` or `csv`.
        #[arg(long, default_value = "ndjson", value_parser = Format::parse)]
        format: Format,
        /// The file to write; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        client: Option<String>,
        /// Recorded at or after (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Recorded before (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
    },
}

pub fn audit(command: AuditCommand, settings: Settings) -> Result<(), String> {
    let (store, mut conn) = open(&settings)?;
    match command {
        AuditCommand::Verify => {
            let v = audit::verify(&mut conn).map_err(|e| e.to_string())?;
            let head = v
                .head
                .map_or("none".into(), |h| format!("{} {}", h.sequence, h.hash));
            match v.first_broken {
                None => {
                    println!("ok: {} records, head {head}", v.records);
                    Ok(())
                }
                Some(seq) => Err(format!(
                    "broken: record {seq} does not check out ({} records read, last {head})",
                    v.records
                )),
            }
        }
        AuditCommand::Replay { sequence, all } => {
            drop(conn);
            let registry = Arc::new(PolicyRegistry::new(PolicyEngine::default()));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let (replayed, changed) = runtime
                .block_on(async {
                    match (sequence, all) {
                        (Some(seq), false) => service::replay(&store, registry, seq)
                            .await
                            .map(|r| (1, if r.identical { vec![] } else { vec![r] })),
                        _ => service::replay_all(&store, registry)
                            .await
                            .map(|s| (s.replayed, s.changed)),
                    }
                })
                .map_err(|e| e.to_string())?;
            for r in &changed {
                print_changed(r);
            }
            println!(
                "{replayed} decision(s) replayed, {} identical, {} different",
                replayed - changed.len() as u64,
                changed.len()
            );
            if changed.is_empty() {
                Ok(())
            } else {
                Err(format!("{} decision(s) replay differently", changed.len()))
            }
        }
        AuditCommand::Export {
            format,
            out,
            kind,
            client,
            from,
            to,
        } => {
            let filter = RecordFilter {
                kind,
                client_id: client,
                from: from.map(|t| t.naive_utc()),
                to: to.map(|t| t.naive_utc()),
            };
            let sink: Box<dyn Write> = match &out {
                Some(path) => {
                    Box::new(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
                }
                None => Box::new(io::stdout().lock()),
            };
            let mut sink = BufWriter::new(sink);
            let mut export = Export::start(&mut conn, filter, format).map_err(|e| e.to_string())?;
            while let Some(chunk) = export.next_chunk(&mut conn).map_err(|e| e.to_string())? {
                sink.write_all(&chunk).map_err(|e| e.to_string())?;
            }
            sink.flush().map_err(|e| e.to_string())
        }
    }
}

fn print_changed(r: &Replay) {
    println!(
        "record {} (decision {}): {} difference(s)",
        r.sequence,
        r.decision_id,
        r.differences.len()
    );
    for d in &r.differences {
        println!("  {}: {} -> {}", d.path, d.original, d.replayed);
    }
}
