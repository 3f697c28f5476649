//! The main path: decide on a credit request, reserve what was approved, record the proof —
//! all in one transaction — and the manual review of what the policies referred.

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ServiceError;
use super::answer::{CreditDecision, DecisionTerms, Deposit, ReasonView, RiskSummary};
use super::clients::profile_json;
use super::committer::DecisionWriter;
use super::evaluate::{Read, client_for, run_pipeline, stamped_client_for};
use super::policies::PolicyRegistry;
use super::reviews::risk_of;
use crate::audit::{self, Chain, Entry, Header, Verbatim, canonical_json, to_canonical_json};
use crate::domain::{Client, ClientProfile, ClientStatus, CreditRequest, Money, Risk};
use crate::policy::{PipelineResult, Trigger};
use crate::store::clients::{self as client_table, Stamp};
use crate::store::decisions::{self as table, DecisionRow, ResolutionRow};
use crate::store::ledgers::{self, Reviewed};
use crate::store::reservations::{self, ReservationRow};
use crate::store::{AnyConnection, Store, read_snapshot, write_tx_retrying};

/// A decision and whether it was made now (201) or is the answer to a retry (200).
#[derive(Debug)]
pub struct Decided {
    pub decision: CreditDecision,
    /// `decision` in JSON exactly as stored: the answer's body, so it is not serialised twice.
    pub answer: String,
    pub created: bool,
    /// The audit payload of a decision made now, for the shadow runs (taken by the writer).
    pub(crate) payload: Option<String>,
}

/// Decides on `request`, idempotent by `request_id`. The policies run here, in parallel with
/// other requests (on SQLite a few per core at once, in arrival order: see
/// [`DecisionWriter::drafting`]), on the client's state as read; the decision writer then
/// checks, under the write lock, that this state still holds before it reserves and records
/// (group-committed), and decides again on the new state when it does not. Concurrent orders
/// of one client can therefore never reserve more than the limit leaves.
pub async fn decide(
    store: &Store,
    registry: Arc<PolicyRegistry>,
    writer: &DecisionWriter,
    ttl: Duration,
    request: CreditRequest,
    actor: String,
) -> Result<Decided, ServiceError> {
    let asked = Asked::new(request, actor);
    let turn = writer.drafting().await?;
    let prepared = store
        .run(move |conn| {
            read_snapshot(conn, |conn| {
                if let Some(row) = table::by_request_id(conn, &asked.request.request_id)? {
                    return replay(row, &asked.sha).map(|d| Prepared::Answered(Box::new(d)));
                }
                let now = Utc::now().trunc_subsecs(6);
                let (client, stamp) = stamped_client_for(conn, &asked.request, now)?;
                draft(conn, &registry, ttl, asked, client, now, stamp)
                    .map(|d| Prepared::Draft(Box::new(d)))
            })
        })
        .await?;
    drop(turn);
    match prepared {
        Prepared::Answered(decided) => Ok(*decided),
        Prepared::Draft(draft) => writer.decide(*draft).await,
    }
}

enum Prepared {
    /// A retry of a request already decided.
    Answered(Box<Decided>),
    Draft(Box<Draft>),
}

/// A request as asked, with its canonical JSON (`idempotency_json`) and that text's SHA-256,
/// computed once: the hash tells a retry from a reuse, the text goes into the audit payload.
#[derive(Clone, Debug)]
struct Asked {
    request: CreditRequest,
    json: String,
    sha: String,
    actor: String,
}

impl Asked {
    fn new(request: CreditRequest, actor: String) -> Self {
        let json = canonical_json(&request.idempotency_json());
        let sha = hex::encode(Sha256::digest(&json));
        Self {
            request,
            json,
            sha,
            actor,
        }
    }
}

/// A decision's audit payload, written as canonical JSON straight from its parts; its fields in
/// alphabetical order, so that the writer leaves them where they are instead of copying the
/// whole payload again in sorted order.
#[derive(Serialize)]
struct AuditPayload<'a> {
    answer: TermsInAudit<'a>,
    client: &'a serde_json::Value,
    decision_id: &'a str,
    expires_at: Option<String>,
    /// The stages' versions, in canonical JSON already (see `ActiveSet::credit_request_refs`).
    policies: Verbatim<'a>,
    request: Verbatim<'a>,
    request_sha256: &'a str,
    result: &'a PipelineResult,
}

/// [`DecisionTerms`] as the audit payload holds them: the same fields, in alphabetical order
/// (canonical JSON's), and the versions as the active set wrote them once
/// (`ActiveSet::credit_request_refs`, from the stages the terms name). Replay compares this
/// with the terms computed again, so a field left out here would show there.
#[derive(Serialize)]
struct TermsInAudit<'a> {
    approved_amount: &'a str,
    available_credit_after: &'a str,
    credit_limit: &'a str,
    currency: &'a str,
    deposit: Option<&'a Deposit>,
    outcome: &'a str,
    policies: Verbatim<'a>,
    reasons: &'a [ReasonView],
    requested_amount: &'a str,
    risk: &'a RiskSummary,
    terms_days: Option<u32>,
}

impl<'a> TermsInAudit<'a> {
    fn new(terms: &'a DecisionTerms, policies: &'a str) -> Self {
        // Every field named, so that one added to the terms cannot be forgotten here.
        let DecisionTerms {
            outcome,
            approved_amount,
            requested_amount,
            currency,
            terms_days,
            deposit,
            credit_limit,
            available_credit_after,
            risk,
            reasons,
            policies: _,
        } = terms;
        Self {
            approved_amount,
            available_credit_after,
            credit_limit,
            currency,
            deposit: deposit.as_ref(),
            outcome,
            policies: Verbatim(policies),
            reasons,
            requested_amount,
            risk,
            terms_days: *terms_days,
        }
    }
}

/// A decision made on the client's state as read, not yet written: the state it relied on,
/// so the writer can check it still holds, and everything the writer records.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    asked: Asked,
    now: DateTime<Utc>,
    /// The client as the policies saw it, and whether it is a prospect met now.
    client: Client,
    is_new: bool,
    /// What that view of a stored client rests on; `None` for a prospect and for a draft made
    /// by the writer itself.
    stamp: Option<Stamp>,
    /// The risk the scoring stage gave, kept on a prospect created by this decision.
    risk: Option<Risk>,
    /// The policy generation the stages came from.
    generation: i64,
    terms: DecisionTerms,
    approved: Money,
    decision_id: String,
    expires_at: Option<DateTime<Utc>>,
    /// The audit record's payload, in canonical JSON.
    audit_payload: String,
}

/// Runs the active `credit_request` pipeline on `client` and builds the decision to write.
fn draft(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    ttl: Duration,
    asked: Asked,
    (client, is_new): (Client, bool),
    now: DateTime<Utc>,
    stamp: Option<Stamp>,
) -> Result<Draft, ServiceError> {
    let active = registry.active(conn)?;
    let evaluation = run_pipeline(
        registry,
        active.stages(Trigger::CreditRequest),
        &asked.request,
        client,
    )?;
    let terms = DecisionTerms::from_evaluation(&evaluation);
    let approved = Money::parse(&terms.approved_amount, evaluation.client.currency)
        .map_err(|e| ServiceError::Internal(format!("amount {}: {e}", terms.approved_amount)))?;
    let decision_id = uuid::Uuid::now_v7().to_string();
    let expires_at = terms.reserves().then(|| now + ttl);
    let audit_payload = to_canonical_json(&AuditPayload {
        decision_id: &decision_id,
        request: Verbatim(&asked.json),
        request_sha256: &asked.sha,
        client: &evaluation.client_view,
        policies: Verbatim(&active.credit_request_refs),
        result: &evaluation.result,
        answer: TermsInAudit::new(&terms, &active.credit_request_refs),
        expires_at: expires_at.map(audit::rfc3339),
    })
    .map_err(|e| ServiceError::Internal(format!("audit payload: {e}")))?;
    Ok(Draft {
        asked,
        now,
        client: evaluation.client,
        is_new,
        stamp,
        risk: risk_of(&evaluation.result),
        generation: active.generation,
        terms,
        approved,
        decision_id,
        expires_at,
        audit_payload,
    })
}

/// Writes `draft` inside the writer's transaction when what it relied on still holds — the
/// request not decided meanwhile, the client's state and the policy generation unchanged —
/// and otherwise decides again on the state as it is now. A retry is answered from the record.
/// The client's state is checked by its version (locked on PostgreSQL) and the instant its
/// read figures would change by time, not by reading the client again: one query instead of
/// four, and no row to decode.
pub(crate) fn commit_in_tx(
    conn: &mut AnyConnection,
    chain: &mut Chain,
    registry: &PolicyRegistry,
    ttl: Duration,
    generation: i64,
    draft: Draft,
) -> Result<Decided, ServiceError> {
    if let Some(row) = table::by_request_id(conn, &draft.asked.request.request_id)? {
        return replay(row, &draft.asked.sha);
    }
    let now = Utc::now().trunc_subsecs(6);
    let holds = !draft.is_new
        && draft.generation == generation
        && draft.now.date_naive() == now.date_naive()
        && match draft.stamp {
            Some(stamp) => stamp.holds(
                client_table::lock_version(conn, &draft.asked.request.client_id)?,
                now,
            ),
            None => false,
        };
    let draft = if holds {
        draft
    } else {
        let current = client_for(conn, &draft.asked.request, now, Read::Locked)?;
        self::draft(conn, registry, ttl, draft.asked, current, now, None)?
    };
    write(conn, chain, draft)
}

/// Reserves, creates the prospect if the request introduced one, and records the decision
/// with its audit record.
fn write(conn: &mut AnyConnection, chain: &mut Chain, d: Draft) -> Result<Decided, ServiceError> {
    if d.is_new {
        let limit = Money::parse(&d.terms.credit_limit, d.client.currency)
            .map_err(|e| ServiceError::Internal(format!("limit {}: {e}", d.terms.credit_limit)))?;
        create_prospect(
            conn,
            chain,
            &d.client,
            limit,
            d.risk.as_ref(),
            &d.asked.actor,
            d.now,
        )?;
    }
    reserve(
        conn,
        &d.decision_id,
        &d.asked.request.client_id,
        d.approved,
        d.now,
        d.expires_at,
    )?;
    let (audit, payload) = chain.append_keeping(
        conn,
        Header {
            kind: "decision",
            subject: format!("decision:{}", d.decision_id),
            client_id: Some(d.asked.request.client_id.to_string()),
            actor: d.asked.actor.clone(),
        },
        d.audit_payload,
    )?;
    let decision = CreditDecision {
        decision_id: d.decision_id,
        request_id: d.asked.request.request_id.clone(),
        client_id: d.asked.request.client_id.to_string(),
        terms: d.terms,
        decided_at: d.now,
        expires_at: d.expires_at,
        resolves: None,
        comment: None,
        decided_by: d.asked.actor,
        audit,
    };
    let answer = store_decision(
        conn,
        &decision,
        &d.asked.sha,
        d.asked.request.channel.as_str(),
        d.approved.minor(),
    )?;
    Ok(Decided {
        decision,
        answer,
        created: true,
        payload: Some(payload),
    })
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
        answer: row.answer,
        created: false,
        payload: None,
    })
}

fn parse_answer(row: &DecisionRow) -> Result<CreditDecision, ServiceError> {
    serde_json::from_str(&row.answer)
        .map_err(|e| ServiceError::Internal(format!("decision {}: {e}", row.decision_id)))
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
/// policies opened for it and the risk they scored, so its available credit and band read
/// true from now on.
#[allow(clippy::too_many_arguments)]
fn create_prospect(
    conn: &mut AnyConnection,
    chain: &mut Chain,
    client: &Client,
    limit: Money,
    risk: Option<&Risk>,
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
    if risk.is_some() {
        ledgers::save_review(
            conn,
            client.client_id.as_str(),
            &Reviewed {
                risk,
                credit_limit_minor: limit.minor(),
                status: ClientStatus::Active,
                next_review_on: None,
                at: now,
            },
        )?;
    }
    chain.append(
        conn,
        Header {
            kind: "client.created",
            subject: format!("client:{}", client.client_id),
            client_id: Some(client.client_id.to_string()),
            actor: actor.to_owned(),
        },
        canonical_json(&json!({
            "client_id": client.client_id.as_str(),
            "before": null,
            "after": profile_json(&profile, ClientStatus::Active, true),
            "source": "credit_request",
        })),
    )?;
    Ok(())
}

/// Stores the decision; returns its JSON answer as stored.
fn store_decision(
    conn: &mut AnyConnection,
    decision: &CreditDecision,
    sha: &str,
    channel: &str,
    approved_minor: i64,
) -> Result<String, ServiceError> {
    let answer =
        serde_json::to_string(decision).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let row = DecisionRow {
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
    };
    table::insert(conn, &row)?;
    Ok(row.answer)
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
            read_snapshot(conn, |conn| {
                let row = table::get(conn, &id)?.ok_or_else(|| ServiceError::NotFound {
                    what: format!("decision `{id}`"),
                })?;
                let resolution = table::resolutions_for(conn, &[id.as_str()])?;
                Ok(DecisionRecord {
                    decision: parse_answer(&row)?,
                    resolved_by: resolution.get(&id).map(|r| r.resolution_id.clone()),
                })
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
            read_snapshot(conn, |conn| {
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
