//! The main path: decide on a credit request, reserve what was approved, record the proof —
//! all in one transaction — and the manual review of what the policies referred.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ServiceError;
use super::answer::{CreditDecision, DecisionTerms, Deposit, ReasonView};
use super::clients::profile_json;
use super::committer::DecisionWriter;
use super::evaluate::{client_for, run_pipeline};
use super::policies::PolicyRegistry;
use crate::audit::{self, Entry, canonical_json};
use crate::domain::{Client, ClientProfile, ClientStatus, CreditRequest, Money};
use crate::policy::Trigger;
use crate::store::clients as client_table;
use crate::store::decisions::{self as table, DecisionRow, ResolutionRow};
use crate::store::reservations::{self, ReservationRow};
use crate::store::{AnyConnection, Store, write_tx_retrying};

/// A decision and whether it was made now (201) or is the answer to a retry (200).
#[derive(Debug)]
pub struct Decided {
    pub decision: CreditDecision,
    pub created: bool,
}

/// Decides on `request`: idempotent by `request_id`; the client's row is locked for the
/// evaluation, so concurrent orders of one client are decided one after the other on fresh
/// exposure and can never reserve more than the limit leaves. The writes are group-committed.
pub async fn decide(
    writer: &DecisionWriter,
    request: CreditRequest,
    actor: String,
) -> Result<Decided, ServiceError> {
    let sha = hex::encode(Sha256::digest(canonical_json(&request.idempotency_json())));
    writer.decide(request, sha, actor).await
}

/// One decision inside the caller's write transaction: a retry is answered from the record.
pub(crate) fn decide_in_tx(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    ttl: Duration,
    request: &CreditRequest,
    sha: &str,
    actor: &str,
) -> Result<Decided, ServiceError> {
    if let Some(row) = table::by_request_id(conn, &request.request_id)? {
        return replay(row, sha);
    }
    decide_locked(conn, registry, ttl, request, sha, actor)
}

fn replay(row: DecisionRow, sha: &str) -> Result<Decided, ServiceError> {
    if row.request_sha256 != sha {
        return Err(ServiceError::IdempotencyConflict(format!(
            "request_id `{}` was already used for a different request",
            row.request_id
        )));
    }
    Ok(Decided {
        decision: parse_answer(&row)?,
        created: false,
    })
}

fn parse_answer(row: &DecisionRow) -> Result<CreditDecision, ServiceError> {
    serde_json::from_str(&row.answer)
        .map_err(|e| ServiceError::Internal(format!("decision {}: {e}", row.decision_id)))
}

fn decide_locked(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    ttl: Duration,
    request: &CreditRequest,
    sha: &str,
    actor: &str,
) -> Result<Decided, ServiceError> {
    let now = Utc::now().trunc_subsecs(6);
    let (client, is_new) = client_for(conn, request, now)?;
    let active = registry.active(conn)?;
    let evaluation = run_pipeline(
        registry,
        active.stages(Trigger::CreditRequest),
        request,
        client,
    )?;
    let terms = DecisionTerms::from_evaluation(&evaluation);
    let currency = evaluation.client.currency;
    let amount = |text: &str| {
        Money::parse(text, currency)
            .map_err(|e| ServiceError::Internal(format!("amount {text}: {e}")))
    };
    if is_new {
        create_prospect(
            conn,
            &evaluation.client,
            amount(&terms.credit_limit)?,
            actor,
            now,
        )?;
    }
    let decision_id = uuid::Uuid::now_v7().to_string();
    let approved = amount(&terms.approved_amount)?;
    let expires_at = terms.reserves().then(|| now + ttl);
    reserve(
        conn,
        &decision_id,
        &request.client_id,
        approved,
        now,
        expires_at,
    )?;
    let audit = audit::append(
        conn,
        Entry {
            kind: "decision",
            subject: format!("decision:{decision_id}"),
            client_id: Some(request.client_id.to_string()),
            actor: actor.to_owned(),
            payload: json!({
                "decision_id": decision_id,
                "request": request.idempotency_json(),
                "request_sha256": sha,
                "client": evaluation.client_view,
                "policies": evaluation.policies,
                "result": evaluation.result,
                "answer": terms,
                "expires_at": expires_at.map(audit::rfc3339),
            }),
        },
    )?;
    let decision = CreditDecision {
        decision_id,
        request_id: request.request_id.clone(),
        client_id: request.client_id.to_string(),
        terms,
        decided_at: now,
        expires_at,
        resolves: None,
        comment: None,
        decided_by: actor.to_owned(),
        audit,
    };
    store_decision(
        conn,
        &decision,
        sha,
        request.channel.as_str(),
        approved.minor(),
    )?;
    Ok(Decided {
        decision,
        created: true,
    })
}

/// Holds `amount` for the decision until `expires_at` (nothing to hold for a zero amount or
/// an outcome that reserves nothing).
fn reserve(
    conn: &mut AnyConnection,
    decision_id: &str,
    client_id: &crate::domain::ClientId,
    amount: Money,
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), ServiceError> {
    let Some(expires_at) = expires_at.filter(|_| amount.minor() > 0) else {
        return Ok(());
    };
    reservations::insert(
        conn,
        &ReservationRow {
            decision_id: decision_id.to_owned(),
            client_id: client_id.to_string(),
            amount_minor: amount.minor(),
            status: "active".into(),
            created_at: now.naive_utc(),
            expires_at: expires_at.naive_utc(),
            settled_at: None,
            settled_by: None,
        },
    )?;
    Ok(())
}

/// A buyer first met through a credit request: stored as a prospect with the limit the
/// policies opened for it, so its available credit reads true from now on.
fn create_prospect(
    conn: &mut AnyConnection,
    client: &Client,
    limit: Money,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let profile = ClientProfile {
        name: client.name.clone(),
        registration_number: client.registration_number.clone(),
        country: crate::domain::Country::parse(&client.country).map_err(ServiceError::Internal)?,
        sector: client
            .sector
            .as_deref()
            .map(crate::domain::Sector::parse)
            .transpose()
            .map_err(ServiceError::Internal)?,
        currency: client.currency,
        credit_limit: limit,
        status: Some(ClientStatus::Active),
    };
    client_table::insert(
        conn,
        &client.client_id,
        &profile,
        ClientStatus::Active,
        true,
        now,
    )?;
    audit::append(
        conn,
        Entry {
            kind: "client.created",
            subject: format!("client:{}", client.client_id),
            client_id: Some(client.client_id.to_string()),
            actor: actor.to_owned(),
            payload: json!({
                "client_id": client.client_id.as_str(),
                "before": null,
                "after": profile_json(&profile, ClientStatus::Active, true),
                "source": "credit_request",
            }),
        },
    )?;
    Ok(())
}

fn store_decision(
    conn: &mut AnyConnection,
    decision: &CreditDecision,
    sha: &str,
    channel: &str,
    approved_minor: i64,
) -> Result<(), ServiceError> {
    let answer =
        serde_json::to_string(decision).map_err(|e| ServiceError::Internal(e.to_string()))?;
    table::insert(
        conn,
        &DecisionRow {
            decision_id: decision.decision_id.clone(),
            request_id: decision.request_id.clone(),
            request_sha256: sha.to_owned(),
            client_id: decision.client_id.clone(),
            outcome: decision.terms.outcome.clone(),
            channel: channel.to_owned(),
            approved_minor,
            decided_at: decision.decided_at.naive_utc(),
            resolves: decision.resolves.clone(),
            actor: decision.decided_by.clone(),
            answer,
            audit_sequence: decision.audit.sequence,
        },
    )?;
    Ok(())
}

/// A decision with what became of it, for readers.
#[derive(Debug)]
pub struct DecisionRecord {
    pub decision: CreditDecision,
    /// For a review: the decision that resolved it.
    pub resolved_by: Option<String>,
}

pub async fn get(store: &Store, id: String) -> Result<DecisionRecord, ServiceError> {
    store
        .run(move |conn| {
            let row = table::get(conn, &id)?.ok_or_else(|| ServiceError::NotFound {
                what: format!("decision `{id}`"),
            })?;
            let resolution = table::resolutions_for(conn, &[id.as_str()])?;
            Ok(DecisionRecord {
                decision: parse_answer(&row)?,
                resolved_by: resolution.get(&id).map(|r| r.resolution_id.clone()),
            })
        })
        .await
}

pub async fn list(
    store: &Store,
    query: table::DecisionQuery,
) -> Result<Vec<DecisionRecord>, ServiceError> {
    store
        .run(move |conn| {
            let rows = table::list(conn, &query)?;
            let ids: Vec<&str> = rows.iter().map(|r| r.decision_id.as_str()).collect();
            let resolutions = table::resolutions_for(conn, &ids)?;
            rows.iter()
                .map(|row| {
                    Ok(DecisionRecord {
                        decision: parse_answer(row)?,
                        resolved_by: resolutions
                            .get(&row.decision_id)
                            .map(|r| r.resolution_id.clone()),
                    })
                })
                .collect()
        })
        .await
}

/// A credit manager's verdict on a referred request.
#[derive(Debug)]
pub struct Resolution {
    /// `approved`, `conditional` or `declined`.
    pub outcome: &'static str,
    pub approved_amount: Option<Decimal>,
    pub terms_days: Option<u32>,
    pub deposit_percent: Option<Decimal>,
    pub comment: String,
}

/// Resolves a review with a new decision pointing to it; approving reserves atomically and
/// fails with 409 when the room under the limit is gone.
pub async fn resolve(
    store: &Store,
    ttl: Duration,
    review_id: String,
    resolution: Resolution,
    reviewer: String,
) -> Result<CreditDecision, ServiceError> {
    store
        .run(move |conn| {
            write_tx_retrying(conn, |conn| {
                resolve_locked(conn, ttl, &review_id, &resolution, &reviewer)
            })
        })
        .await
}

fn resolve_locked(
    conn: &mut AnyConnection,
    ttl: Duration,
    review_id: &str,
    resolution: &Resolution,
    reviewer: &str,
) -> Result<CreditDecision, ServiceError> {
    let row = table::get(conn, review_id)?.ok_or_else(|| ServiceError::NotFound {
        what: format!("decision `{review_id}`"),
    })?;
    let original = parse_answer(&row)?;
    if original.terms.outcome != "review" {
        return Err(ServiceError::ReviewAlreadyResolved(format!(
            "decision `{review_id}` is `{}`, not a review waiting for a resolution",
            original.terms.outcome
        )));
    }
    if let Some(done) = table::resolutions_for(conn, &[review_id])?.get(review_id) {
        return Err(ServiceError::ReviewAlreadyResolved(format!(
            "review `{review_id}` was resolved by `{}` in decision `{}`",
            done.resolved_by, done.resolution_id
        )));
    }
    let client_id =
        crate::domain::ClientId::parse(&original.client_id).map_err(ServiceError::Internal)?;
    let client =
        client_table::find_locked(conn, &client_id)?.ok_or_else(|| ServiceError::NotFound {
            what: format!("client `{client_id}`"),
        })?;
    let currency = client.currency;
    let digits = currency.minor_digits();
    let approving = resolution.outcome != "declined";
    let requested =
        Money::parse(&original.terms.requested_amount, currency).map_err(ServiceError::Internal)?;
    let approved = match (approving, resolution.approved_amount) {
        (false, _) => Money::zero(currency),
        (true, None) => requested,
        (true, Some(amount)) => Money::from_decimal(amount, currency)
            .map_err(|m| ServiceError::invalid("approved_amount", m))?,
    };
    let available = client.available_minor();
    if approving && approved.minor() > available {
        return Err(ServiceError::InsufficientCredit(format!(
            "approving {} {} needs room the limit no longer has: {} available",
            approved,
            currency,
            crate::domain::format_minor(available, currency)
        )));
    }
    let now = Utc::now().trunc_subsecs(6);
    let decision_id = uuid::Uuid::now_v7().to_string();
    let expires_at = approving.then(|| now + ttl);
    reserve(conn, &decision_id, &client_id, approved, now, expires_at)?;
    let deposit = resolution
        .deposit_percent
        .filter(|p| approving && !p.is_zero())
        .map(|p| Deposit {
            percent: p.normalize().to_string(),
            amount: (approved.to_decimal() * p / Decimal::ONE_HUNDRED)
                .round_dp_with_strategy(
                    digits,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                )
                .to_string(),
        });
    let terms = DecisionTerms {
        outcome: resolution.outcome.to_owned(),
        approved_amount: approved.to_string(),
        requested_amount: original.terms.requested_amount.clone(),
        currency: currency.code().to_owned(),
        terms_days: if approving {
            resolution.terms_days.or(original.terms.terms_days)
        } else {
            None
        },
        deposit,
        credit_limit: client.credit_limit.to_string(),
        available_credit_after: crate::domain::format_minor(available - approved.minor(), currency),
        risk: original.terms.risk.clone(),
        reasons: vec![ReasonView {
            code: "MANUAL_RESOLUTION".into(),
            message: resolution.comment.clone(),
            policy: "manual".into(),
            policy_version: 0,
        }],
        policies: Vec::new(),
    };
    let audit = audit::append(
        conn,
        Entry {
            kind: "decision.resolution",
            subject: format!("decision:{decision_id}"),
            client_id: Some(client_id.to_string()),
            actor: reviewer.to_owned(),
            payload: json!({
                "decision_id": decision_id,
                "resolves": review_id,
                "comment": resolution.comment,
                "answer": terms,
                "expires_at": expires_at.map(audit::rfc3339),
            }),
        },
    )?;
    let decision = CreditDecision {
        decision_id: decision_id.clone(),
        request_id: format!("{}#resolution", original.request_id),
        client_id: client_id.to_string(),
        terms,
        decided_at: now,
        expires_at,
        resolves: Some(review_id.to_owned()),
        comment: Some(resolution.comment.clone()),
        decided_by: reviewer.to_owned(),
        audit,
    };
    let sha = hex::encode(Sha256::digest(decision.request_id.as_bytes()));
    store_decision(conn, &decision, &sha, "manual", approved.minor())?;
    table::insert_resolution(
        conn,
        &ResolutionRow {
            review_id: review_id.to_owned(),
            resolution_id: decision_id,
            resolved_by: reviewer.to_owned(),
            resolved_at: now.naive_utc(),
        },
    )?;
    Ok(decision)
}
