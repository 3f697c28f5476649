//! Outcome composition: the engine, not the script, decides how effects add up.

use rhai::{Array, Dynamic, Map};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Trigger;
use super::effects::{Action, Band, Effect, Factor, POLICY_ERROR, Reason};
use super::engine::StageError;
use super::input::Baseline;
use super::money::{fit_minor, round_half_up};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Conditional,
    Review,
    Declined,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Conditional => "conditional",
            Outcome::Review => "review",
            Outcome::Declined => "declined",
        }
    }
}

/// A change of the client's status asked by a `client_event` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    Active,
    Blocked,
}

/// What one stage did, for the trace kept with the decision. Fields in alphabetical order, as
/// canonical JSON wants them: the audit payload is then written without reordering them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTrace {
    pub duration_us: u64,
    /// On error: what the stage recorded before failing, none of it applied.
    pub effects: Vec<Effect>,
    pub error: Option<StageError>,
    /// `print`/`debug` output of the script.
    pub logs: Vec<String>,
    /// rhai operations the stage used (its whole budget when it ran out);
    /// absent from traces stored before it existed.
    #[serde(default)]
    pub operations: u64,
    pub policy: String,
    pub sha256: String,
    pub version: u32,
}

/// The composed result of a pipeline run. Fields in alphabetical order, as for [`StageTrace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineResult {
    /// `0` (at the currency's scale) when declined.
    pub approved_amount: Option<Decimal>,
    pub band: Option<Band>,
    pub client_status: Option<ClientStatus>,
    /// `approved_amount * deposit_percent / 100`, half-up to the minor unit.
    pub deposit_amount: Option<Decimal>,
    pub deposit_percent: Decimal,
    pub factors: Vec<Factor>,
    /// The limit that applied to this decision.
    pub limit: Option<Decimal>,
    /// A new standing limit for the client (`set_credit_limit`).
    pub new_credit_limit: Option<Decimal>,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    pub requested_amount: Option<Decimal>,
    pub score: Option<u8>,
    pub terms_days: Option<u32>,
    pub trace: Vec<StageTrace>,
    pub trigger: Trigger,
}

impl PipelineResult {
    /// The stage that failed, if the decision fell back to `review`.
    pub fn failed_stage(&self) -> Option<&StageTrace> {
        self.trace.iter().find(|t| t.error.is_some())
    }
}

/// The running state of a decision while its stages run.
#[derive(Debug, Clone)]
pub(crate) struct Composition {
    trigger: Trigger,
    minor_digits: u32,
    requested_amount: Option<Decimal>,
    approved_amount: Option<Decimal>,
    requested_terms_days: Option<u32>,
    terms_days: Option<u32>,
    deposit_percent: Decimal,
    limit: Option<Decimal>,
    credit_limit: Option<Decimal>,
    new_credit_limit: Option<Decimal>,
    client_status: Option<ClientStatus>,
    score: Option<(u8, Band, Vec<Factor>)>,
    declined: bool,
    referred: bool,
    failed: bool,
    reasons: Vec<Reason>,
    /// Keys of `decision` that effects changed since the map was last written.
    stale: u16,
    /// The last score's factors as `decision.factors` shows them, handed over
    /// by `set_score` (see [`Self::show_factors`]): moved into the map rather
    /// than built again, map by map.
    shown_factors: Option<Dynamic>,
}

impl Composition {
    pub(crate) fn new(trigger: Trigger, baseline: &Baseline) -> Self {
        let digits = baseline.minor_digits;
        let scaled = |v: Option<Decimal>| v.map(|d| fit_minor(d, digits).unwrap_or(d));
        let requested = scaled(baseline.requested_amount);
        let limit = scaled(baseline.credit_limit);
        Self {
            trigger,
            minor_digits: digits,
            requested_amount: requested,
            approved_amount: requested,
            requested_terms_days: baseline.requested_terms_days,
            terms_days: baseline.requested_terms_days,
            deposit_percent: Decimal::ZERO,
            limit,
            credit_limit: limit,
            new_credit_limit: None,
            client_status: None,
            score: None,
            declined: false,
            referred: false,
            failed: false,
            reasons: Vec::new(),
            stale: 0,
            shown_factors: None,
        }
    }

    pub(crate) fn apply(&mut self, effect: &Effect) {
        match &effect.action {
            Action::SetScore {
                score,
                band,
                factors,
            } => {
                self.score = Some((*score, *band, factors.clone()));
                self.shown_factors = None;
            }
            Action::SetLimit { amount } => self.limit = Some(*amount),
            Action::CapAmount { amount } => {
                self.approved_amount =
                    Some(self.approved_amount.map_or(*amount, |a| a.min(*amount)));
            }
            Action::RequireDeposit { percent } => {
                self.deposit_percent = self.deposit_percent.max(*percent);
            }
            Action::LimitTerms { days } => {
                self.terms_days = Some(self.terms_days.map_or(*days, |t| t.min(*days)));
            }
            Action::Refer => self.referred = true,
            Action::Decline => self.declined = true,
            Action::Note => {}
            Action::SetCreditLimit { amount } => {
                self.new_credit_limit = Some(*amount);
                self.credit_limit = Some(*amount);
            }
            Action::BlockClient => self.client_status = Some(ClientStatus::Blocked),
            Action::UnblockClient => self.client_status = Some(ClientStatus::Active),
        }
        self.stale |= DecisionField::changed_by(&effect.action)
            .iter()
            .fold(DecisionField::Outcome.bit(), |bits, field| {
                bits | field.bit()
            });
        self.reasons.push(effect.reason());
    }

    /// Fail safe: the decision goes to a human, with the failing policy named.
    pub(crate) fn fail(&mut self, policy: &str, version: u32, what: &str) {
        self.failed = true;
        let message = if policy.is_empty() {
            format!("{what}; the decision needs manual review")
        } else {
            format!("policy {policy} v{version} failed ({what}); the decision needs manual review")
        };
        self.reasons.push(Reason {
            code: POLICY_ERROR.to_owned(),
            message,
            policy: policy.to_owned(),
            policy_version: version,
        });
    }

    /// declined > review > conditional > approved; any failure is review.
    pub(crate) fn outcome(&self) -> Outcome {
        let reduced =
            matches!((self.approved_amount, self.requested_amount), (Some(a), Some(r)) if a < r);
        let shortened =
            matches!((self.terms_days, self.requested_terms_days), (Some(t), Some(r)) if t < r);
        if self.failed {
            Outcome::Review
        } else if self.declined {
            Outcome::Declined
        } else if self.referred {
            Outcome::Review
        } else if self.deposit_percent > Decimal::ZERO || reduced || shortened {
            Outcome::Conditional
        } else {
            Outcome::Approved
        }
    }

    /// `decision` as scripts see it; every key is always present (`()` when unknown)
    /// because reading a missing property is an error.
    pub(crate) fn decision_map(&mut self) -> Map {
        self.stale = 0;
        self.shown_factors = None;
        // A copy of the keys, filled in place: the template and the fields are in
        // the same (key) order, so no key is sorted, compared or searched.
        let mut map = DECISION_KEYS.with(Map::clone);
        for (slot, field) in map.values_mut().zip(DecisionField::ALL) {
            *slot = self.decision_value(field);
        }
        map
    }

    /// Takes `factors`, the array the last score applied was set from, as
    /// `decision.factors` (the caller vouches that it holds exactly the
    /// score's factors as [`Self::decision_value`] would build them).
    pub(crate) fn show_factors(&mut self, factors: Dynamic) {
        self.shown_factors = Some(factors);
    }

    /// Whether effects changed `decision` since it was last built or updated.
    pub(crate) fn decision_is_stale(&self) -> bool {
        self.stale != 0
    }

    /// Brings a map built by [`Self::decision_map`] up to date: only the keys
    /// that effects changed since are rewritten, with read-only values (the
    /// map is a constant of the scope, updated in place).
    pub(crate) fn update_decision_map(&mut self, map: &mut Map) {
        for field in DecisionField::ALL {
            if self.stale & field.bit() != 0 {
                let shown = match field {
                    DecisionField::Factors => self.shown_factors.take(),
                    _ => None,
                };
                let value = shown
                    .unwrap_or_else(|| self.decision_value(field))
                    .into_read_only();
                // Every key is there from `decision_map`: replaced where it is.
                match map.get_mut(field.name()) {
                    Some(slot) => *slot = value,
                    None => {
                        map.insert(field.name().into(), value);
                    }
                }
            }
        }
        self.stale = 0;
    }

    fn decision_value(&self, field: DecisionField) -> Dynamic {
        let money = |v: Option<Decimal>| v.map_or(Dynamic::UNIT, Dynamic::from_decimal);
        let days = |v: Option<u32>| v.map_or(Dynamic::UNIT, |d| Dynamic::from_int(d.into()));
        match field {
            DecisionField::Outcome => self.outcome().as_str().into(),
            DecisionField::RequestedAmount => money(self.requested_amount),
            DecisionField::ApprovedAmount => money(self.approved_amount),
            DecisionField::RequestedTermsDays => days(self.requested_terms_days),
            DecisionField::TermsDays => days(self.terms_days),
            DecisionField::DepositPercent => Dynamic::from_decimal(self.deposit_percent),
            DecisionField::Limit => money(self.limit),
            DecisionField::CreditLimit => money(self.credit_limit),
            DecisionField::ClientStatus => match self.client_status {
                Some(ClientStatus::Active) => "active".into(),
                Some(ClientStatus::Blocked) => "blocked".into(),
                None => Dynamic::UNIT,
            },
            DecisionField::Score => self.score.as_ref().map_or(Dynamic::UNIT, |(score, ..)| {
                Dynamic::from_int((*score).into())
            }),
            DecisionField::Band => self
                .score
                .as_ref()
                .map_or(Dynamic::UNIT, |(_, band, _)| band.as_str().into()),
            DecisionField::Factors => Dynamic::from_array(
                self.score
                    .iter()
                    .flat_map(|(.., factors)| factors)
                    .map(|f| super::scorecard::factor(f.code.as_str().into(), f.points))
                    .collect::<Array>(),
            ),
            DecisionField::Declined => self.declined.into(),
            DecisionField::Referred => self.referred.into(),
            DecisionField::MinorDigits => Dynamic::from_int(self.minor_digits.into()),
        }
    }

    pub(crate) fn finish(self, trace: Vec<StageTrace>) -> PipelineResult {
        let outcome = self.outcome();
        let digits = self.minor_digits;
        let (approved_amount, deposit_percent) = if outcome == Outcome::Declined {
            (Some(Decimal::new(0, digits)), Decimal::ZERO)
        } else {
            (self.approved_amount, self.deposit_percent)
        };
        let deposit_amount = approved_amount
            .filter(|_| deposit_percent > Decimal::ZERO)
            .and_then(|a| a.checked_mul(deposit_percent))
            .and_then(|x| x.checked_div(Decimal::ONE_HUNDRED))
            .map(|x| round_half_up(x, digits));
        let (score, band, factors) = match self.score {
            Some((s, b, f)) => (Some(s), Some(b), f),
            None => (None, None, Vec::new()),
        };
        PipelineResult {
            trigger: self.trigger,
            outcome,
            requested_amount: self.requested_amount,
            approved_amount,
            deposit_percent,
            deposit_amount,
            terms_days: self.terms_days,
            limit: self.limit,
            new_credit_limit: self.new_credit_limit,
            client_status: self.client_status,
            score,
            band,
            factors,
            reasons: self.reasons,
            trace,
        }
    }
}

/// The keys of `decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecisionField {
    Outcome,
    RequestedAmount,
    ApprovedAmount,
    RequestedTermsDays,
    TermsDays,
    DepositPercent,
    Limit,
    CreditLimit,
    ClientStatus,
    Score,
    Band,
    Factors,
    Declined,
    Referred,
    MinorDigits,
}

thread_local! {
    /// The keys of `decision`, each `()`: what [`Composition::decision_map`] copies.
    static DECISION_KEYS: Map = DecisionField::ALL
        .into_iter()
        .map(|field| (field.name().into(), Dynamic::UNIT))
        .collect();
}

impl DecisionField {
    /// In key order, as the map holds them.
    const ALL: [Self; 15] = [
        Self::ApprovedAmount,
        Self::Band,
        Self::ClientStatus,
        Self::CreditLimit,
        Self::Declined,
        Self::DepositPercent,
        Self::Factors,
        Self::Limit,
        Self::MinorDigits,
        Self::Outcome,
        Self::Referred,
        Self::RequestedAmount,
        Self::RequestedTermsDays,
        Self::Score,
        Self::TermsDays,
    ];

    fn bit(self) -> u16 {
        1 << self as u16
    }

    fn name(self) -> &'static str {
        match self {
            Self::Outcome => "outcome",
            Self::RequestedAmount => "requested_amount",
            Self::ApprovedAmount => "approved_amount",
            Self::RequestedTermsDays => "requested_terms_days",
            Self::TermsDays => "terms_days",
            Self::DepositPercent => "deposit_percent",
            Self::Limit => "limit",
            Self::CreditLimit => "credit_limit",
            Self::ClientStatus => "client_status",
            Self::Score => "score",
            Self::Band => "band",
            Self::Factors => "factors",
            Self::Declined => "declined",
            Self::Referred => "referred",
            Self::MinorDigits => "minor_digits",
        }
    }

    /// The keys an effect can change, `outcome` aside (any effect may change it).
    /// Must follow [`Composition::apply`]: a key missing here would leave later
    /// stages a stale `decision` (`updating_decision_equals_rebuilding_it…` checks).
    fn changed_by(action: &Action) -> &'static [Self] {
        match action {
            Action::SetScore { .. } => &[Self::Score, Self::Band, Self::Factors],
            Action::SetLimit { .. } => &[Self::Limit],
            Action::CapAmount { .. } => &[Self::ApprovedAmount],
            Action::RequireDeposit { .. } => &[Self::DepositPercent],
            Action::LimitTerms { .. } => &[Self::TermsDays],
            Action::Refer => &[Self::Referred],
            Action::Decline => &[Self::Declined],
            Action::Note => &[],
            Action::SetCreditLimit { .. } => &[Self::CreditLimit],
            Action::BlockClient | Action::UnblockClient => &[Self::ClientStatus],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(action: Action) -> Effect {
        Effect {
            policy: "p".into(),
            policy_version: 1,
            action,
            code: "X".into(),
            message: "m".into(),
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn debug(map: &Map) -> String {
        format!("{map:?}")
    }

    #[test]
    fn decision_fields_are_listed_in_key_order() {
        let names: Vec<&str> = DecisionField::ALL.iter().map(|f| f.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn decision_map_holds_each_field_under_its_own_name() {
        let baseline = Baseline {
            requested_amount: Some(d("1000.00")),
            requested_terms_days: Some(60),
            credit_limit: Some(d("50000.00")),
            minor_digits: 2,
        };
        let mut composition = Composition::new(Trigger::CreditRequest, &baseline);
        let map = composition.decision_map();
        assert_eq!(map.len(), DecisionField::ALL.len());
        for field in DecisionField::ALL {
            let held = map.get(field.name()).map(|v| format!("{v:?}"));
            let value = format!("{:?}", composition.decision_value(field));
            assert_eq!(held, Some(value), "{}", field.name());
        }
    }

    #[test]
    fn updating_decision_equals_rebuilding_it_for_every_effect() {
        let actions = [
            Action::SetScore {
                score: 65,
                band: Band::D,
                factors: vec![Factor {
                    code: "LATE".into(),
                    points: 65,
                }],
            },
            Action::SetLimit {
                amount: d("40000.00"),
            },
            Action::CapAmount {
                amount: d("800.00"),
            },
            Action::RequireDeposit { percent: d("30") },
            Action::LimitTerms { days: 15 },
            Action::Note,
            Action::Refer,
            Action::SetCreditLimit {
                amount: d("20000.00"),
            },
            Action::BlockClient,
            Action::UnblockClient,
            Action::Decline,
        ];
        for trigger in [Trigger::CreditRequest, Trigger::ClientEvent] {
            let baseline = Baseline {
                requested_amount: Some(d("1000.00")),
                requested_terms_days: Some(60),
                credit_limit: Some(d("50000.00")),
                minor_digits: 2,
            };
            let mut composition = Composition::new(trigger, &baseline);
            let mut map = composition.decision_map();
            assert!(!composition.decision_is_stale());
            for action in &actions {
                composition.apply(&effect(action.clone()));
                assert!(composition.decision_is_stale(), "{action:?}");
                composition.update_decision_map(&mut map);
                assert!(!composition.decision_is_stale());
                assert_eq!(
                    debug(&map),
                    debug(&composition.decision_map()),
                    "{action:?}"
                );
            }
        }
    }
}
