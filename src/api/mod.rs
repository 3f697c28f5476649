//! HTTP only: routes, extractors, error rendering and the contract. Handlers are thin and
//! call `service`; they never touch diesel or rhai.

pub mod audit;
pub mod auth;
pub mod backtest;
pub mod clients;
pub mod console;
pub mod cursor;
pub mod decisions;
pub mod error;
pub mod events;
pub mod health;
pub mod impact;
pub mod json;
pub mod observe;
pub mod openapi;
pub mod policies;
pub mod portfolio;
pub mod requests;
pub mod shadow;

use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::SwaggerUi;

use error::ApiError;

/// Every route of the service. Resources (not method guards) so that a known path with the
/// wrong method is a 405, not a 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/v1/clients").route(web::get().to(clients::list_clients)))
        .service(
            web::resource("/v1/clients/{client_id}")
                .route(web::get().to(clients::get_client))
                .route(web::put().to(clients::put_client)),
        )
        .service(
            web::resource("/v1/clients/{client_id}/events")
                .route(web::get().to(events::list_events)),
        )
        .service(web::resource("/v1/events").route(web::post().to(events::post_events)))
        .service(web::resource("/v1/portfolio").route(web::get().to(portfolio::get_portfolio)))
        .service(web::resource("/v1/audit/records").route(web::get().to(audit::list_records)))
        .service(
            web::resource("/v1/audit/records/{sequence}").route(web::get().to(audit::get_record)),
        )
        .service(
            web::resource("/v1/audit/records/{sequence}/replay")
                .route(web::post().to(audit::replay)),
        )
        .service(
            web::resource("/v1/audit/records/{sequence}/capture")
                .route(web::post().to(audit::capture)),
        )
        .service(web::resource("/v1/audit/verify").route(web::get().to(audit::verify)))
        .service(web::resource("/v1/audit/export").route(web::get().to(audit::export)))
        .service(
            web::resource("/v1/credit-decisions")
                .route(web::post().to(decisions::decide))
                .route(web::get().to(decisions::list_decisions)),
        )
        .service(
            web::resource("/v1/credit-decisions/{decision_id}")
                .route(web::get().to(decisions::get_decision)),
        )
        .service(
            web::resource("/v1/credit-decisions/{decision_id}/resolution")
                .route(web::post().to(decisions::resolve)),
        )
        .service(web::resource("/v1/policies").route(web::get().to(policies::list_policies)))
        .service(web::resource("/v1/policies/evaluate").route(web::post().to(policies::evaluate)))
        .service(web::resource("/v1/policies/{name}").route(web::get().to(policies::get_policy)))
        .service(
            web::resource("/v1/policies/{name}/versions")
                .route(web::post().to(policies::submit_version)),
        )
        .service(
            web::resource("/v1/policies/{name}/versions/{version}/activate")
                .route(web::post().to(policies::activate_version)),
        )
        .service(
            web::resource("/v1/policies/{name}/versions/{version}/impact")
                .route(web::post().to(impact::impact)),
        )
        .service(
            web::resource("/v1/policies/{name}/versions/{version}/shadow")
                .route(web::post().to(shadow::start_shadow))
                .route(web::get().to(shadow::get_shadow))
                .route(web::delete().to(shadow::stop_shadow)),
        )
        .service(
            web::resource("/v1/policies/{name}/versions/{version}/backtest")
                .route(web::post().to(backtest::backtest)),
        )
        .configure(console::configure)
        .service(web::resource("/docs").route(web::get().to(docs_redirect)))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::document()));
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}

/// Any path no route matches.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "no such resource; see /openapi.json for the API".into(),
    ))
}
