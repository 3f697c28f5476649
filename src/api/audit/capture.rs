//! `POST /v1/audit/records/{sequence}/capture`: a logged decision becomes a regression case of
//! the policies it involved.

use actix_web::{HttpResponse, web};

use super::sequence;
use crate::AppState;
use crate::api::auth::{Authed, PoliciesWrite};
use crate::api::error::ApiError;
use crate::service::capture::{self as service, CapturedCase};

/// Captures the decision of this record as a regression case (`captured-{sequence}`): its
/// input snapshot, and as expected its terms and each stage's effects. From then on a new
/// version of any policy it involved must give the same, or list the case in `supersedes`.
/// Capturing a record again answers the existing case (200).
#[utoipa::path(
    post, path = "/v1/audit/records/{sequence}/capture", tag = "audit",
    params(("sequence" = i64, Path, minimum = 1, description = "The sequence of a `decision` record")),
    responses(
        (status = 201, description = "Captured", body = CapturedCase),
        (status = 200, description = "Captured already: the existing case", body = CapturedCase),
        (status = 404, description = "No such record", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The record's snapshot cannot be read (verify the chain)", body = crate::api::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The record is not a decision", body = crate::api::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["policies:write"]))
)]
pub async fn capture(
    auth: Authed<PoliciesWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sequence = sequence(&path)?;
    let (case, created) = service::capture(&state.store, sequence, auth.actor()).await?;
    Ok(if created {
        HttpResponse::Created().json(case)
    } else {
        HttpResponse::Ok().json(case)
    })
}
