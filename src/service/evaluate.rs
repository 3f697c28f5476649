//! Running the `credit_request` pipeline on a request and the client's stored state. Used by
//! `POST /v1/policies/evaluate` (nothing recorded) and by the decision path.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::ServiceError;
use super::policies::PolicyRegistry;
use crate::domain::{Client, ClientView, CreditRequest};
use crate::policy::{Baseline, PipelineResult, PolicyInput, Stage, Trigger};
use crate::store::clients::{self as client_table, Stamp};
use crate::store::{AnyConnection, Store, read_snapshot};

/// A policy version that took part in a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PolicyRef {
    pub name: String,
    pub version: u32,
    pub sha256: String,
}

impl PolicyRef {
    /// The versions a pipeline of `stages` runs.
    pub fn of_stages(stages: &[Stage]) -> Vec<Self> {
        stages
            .iter()
            .map(|s| Self {
                name: s.name.clone(),
                version: s.version,
                sha256: s.policy.sha256().to_owned(),
            })
            .collect()
    }
}

/// What the pipeline said, on what.
#[derive(Debug)]
pub struct Evaluation {
    pub client: Client,
    /// The `client` object the policies read (and the snapshot kept with a decision).
    pub client_view: serde_json::Value,
    pub result: PipelineResult,
    pub policies: Vec<PolicyRef>,
}

/// How a client is read: `Locked` inside a write transaction (its row locked on PostgreSQL
/// until the commit), `Unlocked` for an evaluation that writes nothing by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Locked,
    Unlocked,
}

/// The client the request is about and whether it is new: the stored client, or the prospect
/// the request describes. Refuses an unknown client without `prospect` and a currency other
/// than the client's.
pub fn client_for(
    conn: &mut AnyConnection,
    request: &CreditRequest,
    now: chrono::DateTime<Utc>,
    read: Read,
) -> Result<(Client, bool), ServiceError> {
    let stored = match read {
        Read::Locked => client_table::find_locked(conn, &request.client_id)?,
        Read::Unlocked => client_table::find_at(conn, &request.client_id, now)?,
    };
    known_or_prospect(request, now, stored)
}

/// [`client_for`] unlocked, with the stamp of the stored client's read (`None` for a
/// prospect): what a decision's draft is made on, for the writer to check it still holds.
pub fn stamped_client_for(
    conn: &mut AnyConnection,
    request: &CreditRequest,
    now: chrono::DateTime<Utc>,
) -> Result<((Client, bool), Option<Stamp>), ServiceError> {
    let (stored, stamp) = match client_table::find_stamped_at(conn, &request.client_id, now)? {
        Some((client, stamp)) => (Some(client), Some(stamp)),
        None => (None, None),
    };
    Ok((known_or_prospect(request, now, stored)?, stamp))
}

fn known_or_prospect(
    request: &CreditRequest,
    now: chrono::DateTime<Utc>,
    stored: Option<Client>,
) -> Result<(Client, bool), ServiceError> {
    let (client, is_new) = match stored {
        Some(client) => (client, false),
        None => (
            request
                .prospect_client(now)
                .ok_or_else(|| ServiceError::UnknownClient(request.client_id.to_string()))?,
            true,
        ),
    };
    if client.currency != request.currency() {
        return Err(ServiceError::CurrencyMismatch {
            expected: client.currency.code().into(),
            got: request.currency().code().into(),
        });
    }
    Ok((client, is_new))
}

/// Runs the pipeline of `stages` for `request` on `client`.
pub fn run_pipeline(
    registry: &PolicyRegistry,
    stages: &[Stage],
    request: &CreditRequest,
    client: Client,
) -> Result<Evaluation, ServiceError> {
    let client_view = serde_json::to_value(ClientView::new(&client, Utc::now().date_naive()))
        .map(Arc::new)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let baseline = Baseline::credit_request(
        request.amount.to_decimal(),
        request.requested_terms_days,
        Some(client.credit_limit.to_decimal()),
        client.currency.minor_digits(),
    );
    let input = PolicyInput::credit_request(request.to_json(), Arc::clone(&client_view), baseline)
        .map_err(|e| ServiceError::Internal(format!("policy input: {e}")))?;
    let result = registry.engine().run(stages, &input);
    // The input's share gone, the view is taken back without a copy.
    drop(input);
    let client_view = Arc::unwrap_or_clone(client_view);
    let policies = PolicyRef::of_stages(stages);
    Ok(Evaluation {
        client,
        client_view,
        result,
        policies,
    })
}

/// What the active policies — with some stages replaced by the given versions — would decide.
/// Nothing is recorded or reserved.
pub async fn evaluate(
    store: &Store,
    registry: Arc<PolicyRegistry>,
    request: CreditRequest,
    versions: BTreeMap<String, i32>,
) -> Result<Evaluation, ServiceError> {
    store
        .run(move |conn| {
            read_snapshot(conn, |conn| {
                let (client, _) = client_for(conn, &request, Utc::now(), Read::Unlocked)?;
                let active = registry.active(conn)?;
                let mut stages = active.stages(Trigger::CreditRequest).to_vec();
                for (name, number) in &versions {
                    let row = super::policies::stored_version(conn, name, *number)?;
                    let stage = registry.stage(&row)?;
                    match stages.iter_mut().find(|s| &s.name == name) {
                        Some(slot) => *slot = stage,
                        None => {
                            return Err(ServiceError::invalid(
                                "versions",
                                format!("`{name}` is not a stage of the credit_request pipeline"),
                            ));
                        }
                    }
                }
                run_pipeline(&registry, &stages, &request, client)
            })
        })
        .await
}
