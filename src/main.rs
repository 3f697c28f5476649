//! The `encours` command line: serve, migrate, mint a local token, print the contract.

use std::process::ExitCode;
use std::sync::Arc;

use actix_web::{HttpServer, web};
use clap::{Parser, Subcommand};

use encours::auth::{Claims, JwtKeys, KeySource, SCOPES};
use encours::cli::audit::AuditCommand;
use encours::cli::events::{ClientsCommand, EventsCommand};
use encours::cli::{self, PoliciesCommand};
use encours::config::{Settings, redact_url};
use encours::{AppState, api, build_app, prepare, store, telemetry};

/// mimalloc rather than glibc's malloc: a request allocates many small, short-lived
/// objects (JSON trees, rhai maps, SQL rows), and glibc's allocator was a sixth of the
/// server's CPU (docs/benchmarks.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "encours",
    version,
    about = "Credit decisions for B2B trade credit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Mint a signed token for local use with the configured HS256 secret.
    Token {
        /// Who the token stands for (recorded as the actor of every act).
        #[arg(long)]
        sub: String,
        /// Scopes, space- or comma-separated, repeatable; `all` for every scope.
        #[arg(long, required = true, num_args = 1..)]
        scope: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Policies as code: list, test, import, export.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Client events: import an ERP's history.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Clients: rebuild the live state from the event log.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// The audit log: verify the chain, replay decisions, export.
    #[command(subcommand)]
    Audit(AuditCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Openapi => {
            print!("{}", api::openapi::document_json());
            Ok(())
        }
        command => Settings::load()
            .map_err(|e| e.to_string())
            .and_then(|settings| run(command, settings)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("encours: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, settings: Settings) -> Result<(), String> {
    match command {
        Command::Serve => {
            telemetry::init(settings.log);
            serve(prepare(settings)?)
        }
        Command::Migrate => {
            let store = store::Store::connect(&settings).map_err(|e| e.to_string())?;
            let mut conn = store.get().map_err(|e| e.to_string())?;
            let applied = store::migrate(&mut conn).map_err(|e| e.to_string())?;
            println!(
                "{}: {} migration(s) applied{}",
                redact_url(&settings.database_url),
                applied.len(),
                if applied.is_empty() {
                    String::new()
                } else {
                    format!(": {}", applied.join(", "))
                }
            );
            Ok(())
        }
        Command::Token { sub, scope, ttl } => {
            let scopes = parse_scopes(&scope)?;
            if !(1..=31 * 24 * 3600).contains(&ttl) {
                return Err("--ttl must be 1 second to 31 days".into());
            }
            let keys = JwtKeys::from_settings(&settings).map_err(|e| e.to_string())?;
            let now = chrono::Utc::now().timestamp();
            let claims = Claims {
                sub,
                exp: now + ttl,
                nbf: None,
                iat: Some(now),
                iss: settings.jwt_issuer.clone(),
                aud: settings.jwt_audience.clone().map(serde_json::Value::String),
                scope: scopes.join(" "),
            };
            println!("{}", keys.mint(&claims).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Policies(command) => cli::policies(command, settings),
        Command::Events(command) => cli::events::events(command, settings),
        Command::Clients(command) => cli::events::clients(command, settings),
        Command::Audit(command) => cli::audit::audit(command, settings),
        Command::Openapi => Ok(()),
    }
}

fn parse_scopes(raw: &[String]) -> Result<Vec<&'static str>, String> {
    let mut scopes = Vec::new();
    for word in raw
        .iter()
        .flat_map(|s| s.split([' ', ',']))
        .filter(|w| !w.is_empty())
    {
        if word == "all" {
            scopes.extend_from_slice(SCOPES);
            continue;
        }
        let known = SCOPES
            .iter()
            .find(|s| **s == word)
            .ok_or_else(|| format!("unknown scope `{word}`; known: {}", SCOPES.join(" ")))?;
        scopes.push(*known);
    }
    scopes.dedup();
    Ok(scopes)
}

/// One HTTP worker per core but one (at least one): the decision writer and the drafts, on
/// threads of their own, need the rest. On 2 cores, a second worker made each decision cost
/// about a tenth more CPU, in thread switches, for a lower rate (docs/benchmarks.md, decisions,
/// tenth round).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

#[actix_web::main]
async fn serve(state: AppState) -> Result<(), String> {
    let settings = Arc::clone(&state.settings);
    if let KeySource::File { path, generated } = &state.keys.source {
        eprintln!(
            "encours: tokens are signed with the {} secret in {} (mode 0600).\n\
             encours: mint one with: encours token --sub $USER --scope all",
            if *generated {
                "newly generated"
            } else {
                "local"
            },
            path.display()
        );
    }
    if settings.review_interval_secs > 0 {
        encours::service::schedule::spawn(
            state.store.clone(),
            Arc::clone(&state.policies),
            std::time::Duration::from_secs(settings.review_interval_secs),
        );
    }
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || build_app(state.clone()))
        .shutdown_timeout(30)
        .bind(&settings.bind)
        .map_err(|e| format!("bind {}: {e}", settings.bind))?;
    server = server.workers(match settings.workers {
        0 => default_workers(),
        n => n,
    });
    tracing::info!(
        bind = %settings.bind,
        database = %redact_url(&settings.database_url),
        "encours serving"
    );
    server.run().await.map_err(|e| e.to_string())
}
