//! Operations endpoints, open without a token: liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::AppState;
use crate::service::ServiceError;
use crate::store;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: the database answers, every migration is applied and both pipelines have their
/// active policies.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready to serve", body = Readiness)))]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<Readiness>, ApiError> {
    let registry = state.policies.clone();
    let problem = state
        .store
        .run(move |conn| -> Result<Option<&'static str>, ServiceError> {
            if !store::migrations_current(conn)? {
                return Ok(Some("migrations are pending"));
            }
            let active = registry.active(conn)?;
            if active.credit_request.is_empty() || active.client_event.is_empty() {
                return Ok(Some("no active policies"));
            }
            Ok(None)
        })
        .await?;
    if let Some(why) = problem {
        return Err(ApiError::Unavailable(why.into()));
    }
    Ok(web::Json(Readiness {
        status: "ready",
        database: state.store.backend(),
    }))
}

/// Prometheus metrics.
///
/// Requests and latency by route and status, database pool use, policy stages run, and the
/// decision writer's batches, decisions and busy time.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(
            &state.store,
            state.decisions.counts(),
            state.events.counts(),
        ))
}
