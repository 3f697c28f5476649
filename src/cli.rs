//! `encours policies …`: policies as code, for credit managers and for a customer's own CI.

pub mod audit;
mod backtest;
pub mod events;

use std::fs;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config::Settings;
use crate::policy::testing::{self, FileReport};
use crate::policy::{PolicyEngine, sha256_hex};
use crate::service::capture;
use crate::service::policies::{self as service, Submission};
use crate::store::{self, Store};

#[derive(Subcommand)]
pub enum PoliciesCommand {
    /// The stages of both pipelines with their active versions.
    List,
    /// Run the test cases of every NAME.rhai / NAME.tests.json pair in DIR; exits non-zero on
    /// any failure (no database needed).
    Test {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Submit a new version for each file whose source or cases differ from the latest version.
    Import {
        dir: PathBuf,
        /// Recorded as the author of the new versions.
        #[arg(long)]
        author: String,
        /// Activate each new version too.
        #[arg(long)]
        activate: bool,
        /// Who activates (four-eyes: must differ from the author when four-eyes is on).
        #[arg(long, requires = "activate")]
        approver: Option<String>,
    },
    /// Write the active version of each stage to DIR as NAME.rhai and NAME.tests.json.
    Export { dir: PathBuf },
    /// Turn the decision of audit record SEQ into a regression case of the policies it involved.
    Capture {
        sequence: i64,
        /// Recorded as who captured it.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Re-run logged decisions with VERSION in place of the version of NAME they recorded and
    /// print what would change (the API's backtest); nothing is written.
    Backtest {
        name: String,
        version: i32,
        /// Decided at or after (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Decided before (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// The most recent this many decisions.
        #[arg(long, default_value_t = crate::service::backtest::MAX_DECISIONS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::service::backtest::MAX_DECISIONS)))]
        limit: u32,
    },
}

pub fn policies(command: PoliciesCommand, settings: Settings) -> Result<(), String> {
    match command {
        PoliciesCommand::Test { dir } => test(&dir),
        other => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(with_database(other, settings))
        }
    }
}

fn test(dir: &Path) -> Result<(), String> {
    let engine = PolicyEngine::default();
    let reports = testing::test_dir(&engine, dir).map_err(|e| e.to_string())?;
    if reports.is_empty() {
        return Err(format!("no NAME.rhai files in {}", dir.display()));
    }
    println!("{:<16} {:>6} {:>7}  result", "policy", "cases", "failed");
    for r in &reports {
        let failed = r.cases.iter().filter(|c| !c.passed).count();
        let verdict = if r.passed() { "pass" } else { "FAIL" };
        println!(
            "{:<16} {:>6} {:>7}  {verdict}",
            r.name,
            r.cases.len(),
            failed
        );
    }
    let failing: Vec<&FileReport> = reports.iter().filter(|r| !r.passed()).collect();
    for r in &failing {
        println!("\n{r}");
    }
    if failing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} policies fail their cases",
            failing.len(),
            reports.len()
        ))
    }
}

async fn with_database(command: PoliciesCommand, settings: Settings) -> Result<(), String> {
    let (store, mut conn) = open(&settings)?;
    let engine = PolicyEngine::default();
    service::defaults::seed(&mut conn, &engine).map_err(|e| e.to_string())?;
    drop(conn);
    let all = service::list(&store).await.map_err(|e| e.to_string())?;
    match command {
        PoliciesCommand::Backtest {
            name,
            version,
            from,
            to,
            limit,
        } => backtest::backtest(&store, name, version, from, to, limit).await,
        PoliciesCommand::List => {
            println!(
                "{:<14} {:<15} {:>3} {:>6}  {:<10} sha256",
                "policy", "trigger", "pos", "active", "author"
            );
            for d in &all {
                let active = d
                    .versions
                    .iter()
                    .find(|v| Some(v.version) == d.policy.active_version);
                println!(
                    "{:<14} {:<15} {:>3} {:>6}  {:<10} {}",
                    d.policy.name,
                    d.policy.trigger_name,
                    d.policy.position,
                    active.map_or("-".into(), |v| format!("v{}", v.version)),
                    active.map_or("-", |v| v.author.as_str()),
                    active.map_or("-", |v| &v.sha256[..12]),
                );
            }
            Ok(())
        }
        PoliciesCommand::Export { dir } => {
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for d in &all {
                let Some(v) = d
                    .versions
                    .iter()
                    .find(|v| Some(v.version) == d.policy.active_version)
                else {
                    continue;
                };
                let tests: serde_json::Value =
                    serde_json::from_str(&v.tests).map_err(|e| e.to_string())?;
                let tests = serde_json::to_string_pretty(&tests).map_err(|e| e.to_string())?;
                write(&dir.join(format!("{}.rhai", d.policy.name)), &v.source)?;
                write(
                    &dir.join(format!("{}.tests.json", d.policy.name)),
                    &format!("{tests}\n"),
                )?;
                println!("{}: v{} written", d.policy.name, v.version);
            }
            Ok(())
        }
        PoliciesCommand::Import {
            dir,
            author,
            activate,
            approver,
        } => {
            let files = testing::load_dir(&dir).map_err(|e| e.to_string())?;
            let approver = approver.unwrap_or_else(|| author.clone());
            for file in files {
                let Some(existing) = all.iter().find(|d| d.policy.name == file.name) else {
                    return Err(format!(
                        "{}: no such stage (known: {})",
                        file.name,
                        names(&all)
                    ));
                };
                let cases = serde_json::to_value(&file.cases).map_err(|e| e.to_string())?;
                let unchanged = existing.versions.last().is_some_and(|latest| {
                    let stored = testing::parse_cases(&latest.tests)
                        .ok()
                        .and_then(|c| serde_json::to_value(c).ok());
                    latest.sha256 == sha256_hex(&file.source) && stored.as_ref() == Some(&cases)
                });
                if unchanged {
                    println!("{}: unchanged", file.name);
                    continue;
                }
                let submission = Submission {
                    description: file.description().unwrap_or("imported").to_owned(),
                    source: file.source,
                    tests: Some(file.cases),
                    supersedes: Vec::new(),
                };
                let (version, _) = service::submit(
                    &store,
                    engine.clone(),
                    file.name.clone(),
                    submission,
                    author.clone(),
                )
                .await
                .map_err(|e| format!("{}: {e}", file.name))?;
                println!("{}: v{} submitted", file.name, version.version);
                if activate {
                    service::activate(
                        &store,
                        engine.clone(),
                        settings.four_eyes,
                        file.name.clone(),
                        version.version,
                        approver.clone(),
                    )
                    .await
                    .map_err(|e| format!("{}: {e}", file.name))?;
                    println!(
                        "{}: v{} activated by {approver}",
                        file.name, version.version
                    );
                }
            }
            Ok(())
        }
        PoliciesCommand::Capture { sequence, by } => {
            let (case, created) = capture::capture(&store, sequence, by)
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = case
                .policies
                .iter()
                .map(|p| format!("{} v{}", p.name, p.version))
                .collect();
            let verb = if created {
                "captured"
            } else {
                "already captured"
            };
            println!(
                "{}: {verb} ({}, {}), attached to {}",
                case.id,
                case.decision_id,
                case.expected.terms.outcome,
                names.join(", ")
            );
            Ok(())
        }
        PoliciesCommand::Test { .. } => Ok(()),
    }
}

/// A migrated database and one connection to it.
pub(crate) fn open(settings: &Settings) -> Result<(Store, store::PooledConnection), String> {
    let store = Store::connect(settings).map_err(|e| e.to_string())?;
    let mut conn = store.get().map_err(|e| e.to_string())?;
    store::migrate(&mut conn).map_err(|e| e.to_string())?;
    Ok((store, conn))
}

fn names(all: &[service::PolicyDetail]) -> String {
    all.iter()
        .map(|d| d.policy.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
