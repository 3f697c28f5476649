//! `GET /v1/audit/export`: the log as a streamed file. Each chunk is one page read on the
//! blocking pool, so memory stays constant and no connection is held between chunks.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::Deserialize;
use utoipa::IntoParams;

use super::FilterQuery;
use crate::AppState;
use crate::api::auth::{AuditRead, Authed};
use crate::api::error::ApiError;
use crate::api::json::Problems;
use crate::service::ServiceError;
use crate::service::audit::export::{Export, Format};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `ndjson` (the default) or `csv`.
    #[param(pattern = r"^(?:ndjson|csv)$")]
    pub format: Option<String>,
    /// Only records of this kind, e.g. `decision`.
    #[param(pattern = r"^[a-z._]{1,64}$")]
    pub kind: Option<String>,
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub client_id: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// The audit log up to its head when the export starts, streamed in sequence order: NDJSON
/// (one record per line, shaped like `GET /v1/audit/records/{sequence}`) or CSV (the payload as
/// a JSON column). Payloads are exactly as hashed, so the file can be verified offline.
#[utoipa::path(
    get, path = "/v1/audit/export", tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = "The records, streamed", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 422, description = "A bad format or filter", body = crate::api::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn export(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let format = match q.format.as_deref() {
        None => Some(Format::Ndjson),
        Some(raw) => p.check("format", Format::parse(raw)),
    };
    let filter = FilterQuery {
        kind: q.kind,
        client_id: q.client_id,
        from: q.from,
        to: q.to,
    }
    .filter(&mut p);
    p.finish()?;
    let format = format.unwrap_or(Format::Ndjson);
    let store = state.store.clone();
    let export = store
        .run(move |conn| Export::start(conn, filter, format))
        .await?;
    let chunks = stream::unfold(Some((store, export)), |next| async move {
        let (store, mut export) = next?;
        let chunk = store
            .run(move |conn| export.next_chunk(conn).map(|chunk| (chunk, export)))
            .await;
        match chunk {
            Ok((Some(bytes), export)) => Some((Ok(web::Bytes::from(bytes)), Some((store, export)))),
            Ok((None, _)) => None,
            Err(e) => {
                // The status line is gone: cutting the stream is how the client learns.
                tracing::error!(error = %e, "audit export failed");
                Some((Err(ExportFailed(e)), None))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"encours-audit.{}\"",
                format.extension()
            ),
        ))
        .streaming(chunks))
}

/// An error after the answer started.
#[derive(Debug, thiserror::Error)]
#[error("audit export failed: {0}")]
struct ExportFailed(ServiceError);
