//! `/v1/policies`: read stages and versions, submit a version, activate it, and evaluate a
//! credit request without recording anything.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Authed, PoliciesActivate, PoliciesRead, PoliciesWrite};
use super::error::ApiError;
use super::json::{Json, Problems, text};
use super::requests::CreditRequestInput;
use crate::AppState;
use crate::audit::AuditRef;
use crate::policy::MAX_SOURCE_BYTES;
use crate::policy::testing::TestCase;
use crate::service::answer::DecisionTerms;
use crate::service::evaluate::{self, Evaluation};
use crate::service::policies::{self as service, PolicyDetail, Submission};
use crate::store::policies::{ActivationRow, VersionRow};

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub version: i32,
    pub sha256: String,
    pub description: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub active: bool,
    pub source: String,
    /// The version's test cases.
    #[schema(value_type = Vec<Object>)]
    pub tests: serde_json::Value,
    /// Captured cases this version knowingly changes, as its submission listed them.
    pub supersedes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivationView {
    pub version: i32,
    pub activated_by: String,
    pub activated_at: DateTime<Utc>,
    /// The audit record of the activation.
    pub audit_sequence: i64,
}

/// A stage of a pipeline with its versions (oldest first) and activations (newest first).
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub name: String,
    /// `credit_request`, `client_event`, or `both`.
    pub trigger: String,
    /// Order within the pipeline(s).
    pub position: i32,
    pub active_version: Option<i32>,
    pub versions: Vec<VersionView>,
    pub activations: Vec<ActivationView>,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyList {
    pub items: Vec<PolicyView>,
}

fn version_view(v: VersionRow, active: Option<i32>, supersedes: Vec<String>) -> VersionView {
    VersionView {
        supersedes,
        active: active == Some(v.version),
        version: v.version,
        sha256: v.sha256,
        description: v.description,
        author: v.author,
        created_at: v.created_at.and_utc(),
        source: v.source,
        tests: serde_json::from_str(&v.tests).unwrap_or(serde_json::Value::Null),
    }
}

fn activation_view(a: ActivationRow) -> ActivationView {
    ActivationView {
        version: a.version,
        activated_by: a.activated_by,
        activated_at: a.activated_at.and_utc(),
        audit_sequence: a.audit_sequence,
    }
}

impl From<PolicyDetail> for PolicyView {
    fn from(d: PolicyDetail) -> Self {
        let active = d.policy.active_version;
        let supersedes = |version: i32| {
            d.supersedes
                .iter()
                .filter(|(v, _)| *v == version)
                .map(|(_, id)| id.clone())
                .collect()
        };
        Self {
            name: d.policy.name,
            trigger: d.policy.trigger_name,
            position: d.policy.position,
            active_version: active,
            versions: d
                .versions
                .into_iter()
                .map(|v| {
                    let cases = supersedes(v.version);
                    version_view(v, active, cases)
                })
                .collect(),
            activations: d.activations.into_iter().map(activation_view).collect(),
        }
    }
}

/// Every stage of both pipelines, in order.
#[utoipa::path(
    get, path = "/v1/policies", tag = "policies",
    responses((status = 200, description = "The policies", body = PolicyList)),
    security(("bearer" = ["policies:read"]))
)]
pub async fn list_policies(
    _auth: Authed<PoliciesRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<PolicyList>, ApiError> {
    let items = service::list(&state.store).await?;
    Ok(web::Json(PolicyList {
        items: items.into_iter().map(PolicyView::from).collect(),
    }))
}

/// One stage: its versions, sources, tests, and who activated what when.
#[utoipa::path(
    get, path = "/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage, e.g. `deposit`")),
    responses((status = 200, description = "The policy", body = PolicyView)),
    security(("bearer" = ["policies:read"]))
)]
pub async fn get_policy(
    _auth: Authed<PoliciesRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<PolicyView>, ApiError> {
    let detail = service::get(&state.store, policy_name(&path)?).await?;
    Ok(web::Json(detail.into()))
}

/// A new version of a stage.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionInput {
    /// The Rhai source, at most 256 KiB.
    #[schema(min_length = 1, pattern = r"\S")]
    pub source: String,
    /// What changed and why, for the next reader.
    #[schema(schema_with = super::json::text_2000)]
    pub description: String,
    /// Test cases; when absent, the active version's cases are carried over and must pass.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tests: Option<Vec<TestCase>>,
    /// Captured cases (e.g. `captured-123`) this version knowingly changes: recorded with it
    /// and in its audit record instead of refusing it.
    pub supersedes: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct VersionCreated {
    pub policy: String,
    #[serde(flatten)]
    pub version: VersionView,
    pub audit: AuditRef,
}

/// Submit a version: compiled (422 `policy_compile_error` with line and column) and tested
/// (422 `policy_test_failed` with the failing cases) before it is stored, inactive.
#[utoipa::path(
    post, path = "/v1/policies/{name}/versions", tag = "policies",
    params(("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage")),
    request_body = VersionInput,
    responses((status = 201, description = "Stored as a draft", body = VersionCreated)),
    security(("bearer" = ["policies:write"]))
)]
pub async fn submit_version(
    auth: Authed<PoliciesWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<VersionInput>,
) -> Result<HttpResponse, ApiError> {
    let name = policy_name(&path)?;
    let input = body.0;
    let mut p = Problems::default();
    if input.source.len() > MAX_SOURCE_BYTES {
        p.push(
            "source",
            format!("must be at most {MAX_SOURCE_BYTES} bytes"),
        );
    }
    if input.source.trim().is_empty() {
        p.push("source", "must not be empty");
    }
    let description = p.check("description", text(&input.description, 2000));
    p.finish()?;
    let supersedes = input.supersedes.unwrap_or_default();
    let submission = Submission {
        source: input.source,
        description: description.unwrap_or_default(),
        tests: input.tests,
        supersedes: supersedes.clone(),
    };
    let engine = state.policies.engine().clone();
    let (version, audit) =
        service::submit(&state.store, engine, name.clone(), submission, auth.actor()).await?;
    Ok(HttpResponse::Created().json(VersionCreated {
        policy: name,
        version: version_view(version, None, supersedes),
        audit,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Activated {
    pub policy: String,
    pub version: i32,
    pub sha256: String,
    pub activated_by: String,
    pub audit: AuditRef,
}

/// Put a version live. Its tests run again first; with four-eyes on (the default), its author
/// cannot activate it (403 `four_eyes_required`). Every server process uses it from its next
/// decision on.
#[utoipa::path(
    post, path = "/v1/policies/{name}/versions/{version}/activate", tag = "policies",
    params(
        ("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage"),
        ("version" = i32, Path, minimum = 1, description = "The version to activate"),
    ),
    responses(
        (status = 200, description = "Active", body = Activated),
        (status = 409, description = "Already active", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["policies:activate"]))
)]
pub async fn activate_version(
    auth: Authed<PoliciesActivate>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Activated>, ApiError> {
    let (name, version) = path.into_inner();
    let name = policy_name(&name)?;
    let number = version
        .parse::<i32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::field("version", "must be a whole number from 1"))?;
    let actor = auth.actor();
    let engine = state.policies.engine().clone();
    let four_eyes = state.settings.four_eyes;
    let (version, audit) =
        service::activate(&state.store, engine, four_eyes, name, number, actor.clone()).await?;
    Ok(web::Json(Activated {
        policy: version.policy,
        version: version.version,
        sha256: version.sha256,
        activated_by: actor,
        audit,
    }))
}

/// A credit request to evaluate, optionally with other versions in place of active ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateInput {
    pub request: CreditRequestInput,
    /// Stage name → version to use instead of the active one.
    #[schema(example = json!({"deposit": 2}))]
    pub versions: Option<BTreeMap<String, i32>>,
}

/// What would be decided, and why; nothing is recorded or reserved.
#[derive(Serialize, ToSchema)]
pub struct EvaluationView {
    pub client_id: String,
    #[serde(flatten)]
    pub terms: DecisionTerms,
    /// Per stage: effects, operations used, time taken, script output, error if any.
    #[schema(value_type = Vec<Object>)]
    pub trace: serde_json::Value,
}

impl EvaluationView {
    pub fn new(e: &Evaluation) -> Self {
        Self {
            client_id: e.client.client_id.to_string(),
            terms: DecisionTerms::from_evaluation(e),
            trace: serde_json::to_value(&e.result.trace).unwrap_or_default(),
        }
    }
}

/// What the policies would decide on this request, with their trace — nothing is recorded or
/// reserved. `versions` swaps in drafts to see what a change would do.
#[utoipa::path(
    post, path = "/v1/policies/evaluate", tag = "policies",
    request_body = EvaluateInput,
    responses(
        (status = 200, description = "The decision that would be made", body = EvaluationView),
        (status = 404, description = "An unknown client without `prospect`, or a version in `versions` that does not exist", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["policies:read"]))
)]
pub async fn evaluate(
    _auth: Authed<PoliciesRead>,
    state: web::Data<AppState>,
    body: Json<EvaluateInput>,
) -> Result<web::Json<EvaluationView>, ApiError> {
    let input = body.0;
    let request = input.request.validate()?;
    let versions = input.versions.unwrap_or_default();
    let evaluation =
        evaluate::evaluate(&state.store, state.policies.clone(), request, versions).await?;
    Ok(web::Json(EvaluationView::new(&evaluation)))
}

pub(crate) fn policy_name(raw: &str) -> Result<String, ApiError> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::field(
            "name",
            "must be 1 to 64 of a-z, 0-9 and '_'",
        ))
    }
}
