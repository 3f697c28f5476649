//! The OpenAPI contract. Paths come from the handlers' annotations; the bearer scheme and
//! the standard problem responses are added here once, from what each operation takes, so no
//! operation can forget the errors it may answer.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::{PROBLEM_JSON, Problem};
use super::{
    audit, backtest, clients, console, decisions, events, health, impact, policies, portfolio,
    shadow,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Encours",
        description = "Credit decisions for B2B trade credit: how much, on what terms, with what \
                       guarantee — and the proof of every answer.",
        license(name = "Proprietary"),
    ),
    paths(
        health::healthz, health::readyz, health::metrics, console::console_page,
        clients::put_client, clients::get_client, clients::list_clients,
        decisions::decide, decisions::get_decision, decisions::list_decisions, decisions::resolve,
        events::post_events, events::list_events, portfolio::get_portfolio,
        audit::list_records, audit::get_record, audit::verify, audit::replay, audit::capture::capture,
        audit::export::export,
        policies::list_policies, policies::get_policy, policies::submit_version,
        policies::activate_version, policies::evaluate, impact::impact, backtest::backtest,
        shadow::start_shadow, shadow::get_shadow, shadow::stop_shadow,
    ),
    components(schemas(Problem)),
    modifiers(&Contract),
    tags(
        (name = "clients", description = "Clients, their limits and live state"),
        (name = "decisions", description = "Credit decisions: how much, on what terms, with what deposit, and why"),
        (name = "events", description = "Client events from the ERP: invoices, payments, insurance, scores, alerts"),
        (name = "policies", description = "Rhai credit policies: versions, tests, activation, evaluation"),
        (name = "audit", description = "The tamper-evident log of every act"),
        (name = "operations", description = "Health, readiness, metrics and the auditor console page (no token)"),
    )
)]
pub struct ApiDoc;

/// The served and committed document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

const PROBLEMS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Malformed request (broken JSON, invalid UTF-8)",
    ),
    (
        "401",
        "Unauthorized",
        "Missing, malformed, expired or wrongly signed token",
    ),
    (
        "403",
        "Forbidden",
        "The token lacks the scope this operation needs",
    ),
    ("404", "NotFound", "No such resource"),
    (
        "413",
        "PayloadTooLarge",
        "The body is over the configured limit",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not application/json",
    ),
    (
        "422",
        "ValidationFailed",
        "Invalid fields, each named in `errors`",
    ),
    (
        "500",
        "Internal",
        "Unexpected failure; logged, details withheld",
    ),
    (
        "503",
        "ServiceUnavailable",
        "The database is unreachable; retry after `Retry-After`",
    ),
];

struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(format!(
                        "A JWT with `sub`, `exp` and a space-separated `scope` claim. Scopes: {}.",
                        crate::auth::SCOPES.join(", ")
                    )))
                    .build(),
            ),
        );
        for (_, name, description) in PROBLEMS {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build();
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(response));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for op in operations(item) {
                add_problems(path, op);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn add_problems(path: &str, op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut statuses = vec!["500"];
    if secured {
        statuses.extend(["401", "403", "503"]);
    }
    if path == "/readyz" {
        statuses.push("503");
    }
    if has_body {
        statuses.extend(["400", "413", "415", "422"]);
    }
    if has_params {
        statuses.push("422");
    }
    if path.contains('{') {
        statuses.push("404");
    }
    for status in statuses {
        if let Some((_, name, _)) = PROBLEMS.iter().find(|(s, _, _)| *s == status) {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
        }
    }
}
