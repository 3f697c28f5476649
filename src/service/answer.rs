//! The shape of a decision as integrators read it, built once from the pipeline's result and
//! stored as answered, so that retries, reads and the audit log all show the same thing.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::evaluate::{Evaluation, PolicyRef};
use crate::audit::AuditRef;
use crate::domain::Currency;
use crate::policy::{Outcome, PipelineResult};

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Deposit {
    /// Percent of the approved amount, e.g. `"30"`.
    #[schema(example = "30")]
    pub percent: String,
    #[schema(example = "3750.00")]
    pub amount: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RiskSummary {
    /// 0..100, higher is riskier.
    pub score: Option<u8>,
    /// A..E.
    pub band: Option<String>,
}

/// One line of the explanation: which policy, which version, said what.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReasonView {
    pub code: String,
    pub message: String,
    pub policy: String,
    pub policy_version: u32,
}

/// How much, on what terms, with what guarantee, and why.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionTerms {
    /// `approved`, `conditional`, `review` or `declined`.
    #[schema(example = "conditional")]
    pub outcome: String,
    /// `"0.00"` unless approved or conditional.
    #[schema(example = "12500.00")]
    pub approved_amount: String,
    /// What was asked for.
    #[schema(example = "15000.00")]
    pub requested_amount: String,
    pub currency: String,
    pub terms_days: Option<u32>,
    pub deposit: Option<Deposit>,
    /// The limit that applied to this request (the standing limit, or what a policy set, e.g.
    /// capped at the insured amount).
    pub credit_limit: String,
    /// That limit minus exposure, after this decision's reservation; negative when over.
    pub available_credit_after: String,
    pub risk: RiskSummary,
    pub reasons: Vec<ReasonView>,
    pub policies: Vec<PolicyRef>,
}

/// What a decision's amounts are measured against.
#[derive(Clone, Debug)]
pub struct Standing {
    pub currency: Currency,
    /// The client's standing limit (a policy may apply a lower one).
    pub credit_limit: Decimal,
    /// Open invoices and reserved credit before this decision.
    pub exposure: Decimal,
}

/// The code of the engine's own guard, which no policy can switch off.
pub const OVER_LIMIT_GUARD: &str = "AVAILABLE_CREDIT_EXCEEDED";

impl DecisionTerms {
    /// Builds the terms; when the policies approve more than the applied limit leaves available,
    /// the engine refers the request instead of over-committing.
    pub fn from_evaluation(e: &Evaluation) -> Self {
        let standing = Standing {
            currency: e.client.currency,
            credit_limit: e.client.credit_limit.to_decimal(),
            exposure: Decimal::new(e.client.exposure_minor(), e.client.currency.minor_digits()),
        };
        Self::compose(&e.result, &e.policies, &standing)
    }

    /// The terms of a pipeline's result for a client in `standing` (also what a replay
    /// recomputes from a decision's snapshot).
    pub fn compose(r: &PipelineResult, policies: &[PolicyRef], standing: &Standing) -> Self {
        let currency = standing.currency;
        let digits = currency.minor_digits();
        let money = |d: Decimal| d.round_dp(digits).to_string();
        let zero = Decimal::new(0, digits);
        let limit = r.limit.unwrap_or(standing.credit_limit);
        let available = limit - standing.exposure;
        let mut outcome = r.outcome;
        let mut reasons: Vec<ReasonView> = r
            .reasons
            .iter()
            .map(|x| ReasonView {
                code: x.code.clone(),
                message: x.message.clone(),
                policy: x.policy.clone(),
                policy_version: x.policy_version,
            })
            .collect();
        let mut approved = match outcome {
            Outcome::Approved | Outcome::Conditional => r.approved_amount.unwrap_or(zero),
            Outcome::Review | Outcome::Declined => zero,
        };
        if approved > available.max(zero) {
            reasons.push(ReasonView {
                code: OVER_LIMIT_GUARD.into(),
                message: format!(
                    "The policies approved {} but only {} {} is available under the limit; referred to a credit manager.",
                    money(approved),
                    money(available.max(zero)),
                    currency.code()
                ),
                policy: "engine".into(),
                policy_version: 0,
            });
            outcome = Outcome::Review;
            approved = zero;
        }
        let deposit = (matches!(outcome, Outcome::Approved | Outcome::Conditional)
            && !r.deposit_percent.is_zero())
        .then(|| Deposit {
            percent: r.deposit_percent.normalize().to_string(),
            amount: money(r.deposit_amount.unwrap_or(zero)),
        });
        Self {
            outcome: outcome.as_str().to_owned(),
            approved_amount: money(approved),
            requested_amount: money(r.requested_amount.unwrap_or(zero)),
            currency: currency.code().to_owned(),
            terms_days: r.terms_days,
            deposit,
            credit_limit: money(limit),
            available_credit_after: money(available - approved),
            risk: RiskSummary {
                score: r.score,
                band: r.band.map(|b| b.as_str().to_owned()),
            },
            reasons,
            policies: policies.to_vec(),
        }
    }

    /// Whether this decision holds credit.
    pub fn reserves(&self) -> bool {
        matches!(self.outcome.as_str(), "approved" | "conditional")
    }
}

/// A recorded credit decision, exactly as `POST /v1/credit-decisions` answered it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditDecision {
    pub decision_id: String,
    pub request_id: String,
    pub client_id: String,
    #[serde(flatten)]
    pub terms: DecisionTerms,
    pub decided_at: DateTime<Utc>,
    /// When the reservation lapses (approved and conditional only).
    pub expires_at: Option<DateTime<Utc>>,
    /// For a review's resolution: the decision it resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves: Option<String>,
    /// For a review's resolution: the reviewer's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who decided: the token's `sub`.
    pub decided_by: String,
    pub audit: AuditRef,
}
