//! `/console`: the auditor console, a static page served from the binary. The page itself is
//! public and holds no data; every call it makes carries the user's bearer token, kept in the
//! tab's `sessionStorage` only. A strict Content-Security-Policy (no inline code, no other
//! origin) is the guard against an injected value turning into script.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::error::ApiError;

/// Only our own files, no inline script or style, no framing, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("console/index.html");

/// The page's scripts (ES modules importing each other by relative path) and style.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("console/app.css"),
    ),
    ("app.js", JS, include_str!("console/app.js")),
    ("core.js", JS, include_str!("console/core.js")),
    ("decisions.js", JS, include_str!("console/decisions.js")),
    ("record.js", JS, include_str!("console/record.js")),
    ("audit.js", JS, include_str!("console/audit.js")),
    ("clients.js", JS, include_str!("console/clients.js")),
    ("policies.js", JS, include_str!("console/policies.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(console_page)))
        .service(web::resource("/console/{asset}").route(web::get().to(asset)));
}

/// The auditor console.
///
/// One page for auditors and credit managers: decisions and their reasons, the review queue,
/// the audit chain and its exports, clients. The page is public; the API calls it makes carry
/// the user's token and need its scopes (`decisions:read`, `clients:read`, `audit:read`,
/// `reviews:write`).
#[utoipa::path(get, path = "/console", tag = "operations",
    responses((status = 200, description = "The console's HTML page", body = String, content_type = "text/html")))]
pub async fn console_page() -> HttpResponse {
    serve("text/html; charset=utf-8", INDEX)
}

async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path.as_str())
        .map(|(_, content_type, body)| serve(content_type, body))
        .ok_or_else(|| ApiError::NotFound(format!("the console has no file {}", path.as_str())))
}

fn serve(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // The files change with the binary: revalidate rather than run yesterday's script.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}
