//! Champion against challenger: how decisions change when one policy version stands in for
//! another. One comparison serves backtests (logged decisions), shadow runs (live traffic)
//! and captured cases, so that they all report the same thing the same way.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::DecisionTerms;

/// What matters about a decision's terms when comparing two policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TermsSummary {
    pub outcome: String,
    pub currency: String,
    #[schema(value_type = String, example = "4800.00")]
    pub approved_amount: Decimal,
    /// `0` without a deposit.
    #[schema(value_type = String, example = "30")]
    pub deposit_percent: Decimal,
    #[schema(value_type = String, example = "1440.00")]
    pub deposit_amount: Decimal,
    pub terms_days: Option<u32>,
}

impl TermsSummary {
    pub fn of(terms: &DecisionTerms) -> Result<Self, String> {
        let decimal = |what: &str, raw: &str| {
            raw.parse::<Decimal>()
                .map_err(|e| format!("{what} `{raw}`: {e}"))
        };
        let (percent, amount) = match &terms.deposit {
            Some(d) => (
                decimal("deposit percent", &d.percent)?,
                decimal("deposit amount", &d.amount)?,
            ),
            None => (Decimal::ZERO, Decimal::ZERO),
        };
        Ok(Self {
            outcome: terms.outcome.clone(),
            currency: terms.currency.clone(),
            approved_amount: decimal("approved amount", &terms.approved_amount)?,
            deposit_percent: percent,
            deposit_amount: amount,
            terms_days: terms.terms_days,
        })
    }

    /// From the `answer` of a decision's audit record.
    pub fn of_answer(answer: &serde_json::Value) -> Result<Self, String> {
        let terms = DecisionTerms::deserialize(answer).map_err(|e| e.to_string())?;
        Self::of(&terms)
    }
}

/// Sums in one currency, recorded against challenger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct AmountTotals {
    #[schema(value_type = String)]
    pub recorded_approved: Decimal,
    #[schema(value_type = String)]
    pub challenger_approved: Decimal,
    #[schema(value_type = String)]
    pub recorded_deposits: Decimal,
    #[schema(value_type = String)]
    pub challenger_deposits: Decimal,
}

/// How payment terms moved, decision by decision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct TermsMoves {
    pub shortened: u64,
    pub lengthened: u64,
    /// Terms given by one side only (e.g. approved against declined).
    pub given_by_one_side: u64,
}

/// The comparison over many decisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// Decisions compared.
    pub compared: u64,
    /// Decisions whose outcome, approved amount, deposit or terms differ.
    pub changed: u64,
    /// Recorded outcome → challenger outcome → count; unchanged outcomes on the diagonal.
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per currency.
    pub amounts: BTreeMap<String, AmountTotals>,
    pub terms: TermsMoves,
}

impl Comparison {
    /// Counts one decision; true when the challenger changes it.
    pub fn add(&mut self, recorded: &TermsSummary, challenger: &TermsSummary) -> bool {
        self.compared += 1;
        *self
            .outcomes
            .entry(recorded.outcome.clone())
            .or_default()
            .entry(challenger.outcome.clone())
            .or_default() += 1;
        let totals = self.amounts.entry(recorded.currency.clone()).or_default();
        totals.recorded_approved += recorded.approved_amount;
        totals.challenger_approved += challenger.approved_amount;
        totals.recorded_deposits += recorded.deposit_amount;
        totals.challenger_deposits += challenger.deposit_amount;
        match (recorded.terms_days, challenger.terms_days) {
            (Some(a), Some(b)) if b < a => self.terms.shortened += 1,
            (Some(a), Some(b)) if b > a => self.terms.lengthened += 1,
            (Some(_), None) | (None, Some(_)) => self.terms.given_by_one_side += 1,
            _ => {}
        }
        let changed = recorded != challenger;
        if changed {
            self.changed += 1;
        }
        changed
    }

    /// Adds another comparison's counts (the parts of a parallel run).
    pub fn merge(&mut self, other: Comparison) {
        self.compared += other.compared;
        self.changed += other.changed;
        for (from, row) in other.outcomes {
            let mine = self.outcomes.entry(from).or_default();
            for (to, n) in row {
                *mine.entry(to).or_default() += n;
            }
        }
        for (currency, t) in other.amounts {
            let mine = self.amounts.entry(currency).or_default();
            mine.recorded_approved += t.recorded_approved;
            mine.challenger_approved += t.challenger_approved;
            mine.recorded_deposits += t.recorded_deposits;
            mine.challenger_deposits += t.challenger_deposits;
        }
        self.terms.shortened += other.terms.shortened;
        self.terms.lengthened += other.terms.lengthened;
        self.terms.given_by_one_side += other.terms.given_by_one_side;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(outcome: &str, approved: &str, deposit: &str, days: Option<u32>) -> TermsSummary {
        TermsSummary {
            outcome: outcome.into(),
            currency: "EUR".into(),
            approved_amount: approved.parse().unwrap(),
            deposit_percent: Decimal::ZERO,
            deposit_amount: deposit.parse().unwrap(),
            terms_days: days,
        }
    }

    #[test]
    fn counts_changes_matrix_and_totals_and_merges() {
        let mut a = Comparison::default();
        let same = terms("approved", "100.00", "0", Some(30));
        assert!(!a.add(&same, &same));
        assert!(a.add(&same, &terms("conditional", "80.00", "24.00", Some(15))));
        let mut b = Comparison::default();
        assert!(b.add(&same, &terms("declined", "0.00", "0", None)));
        a.merge(b);
        assert_eq!((a.compared, a.changed), (3, 2));
        assert_eq!(a.outcomes["approved"]["approved"], 1);
        assert_eq!(a.outcomes["approved"]["conditional"], 1);
        assert_eq!(a.outcomes["approved"]["declined"], 1);
        let eur = &a.amounts["EUR"];
        assert_eq!(eur.recorded_approved, "300.00".parse().unwrap());
        assert_eq!(eur.challenger_approved, "180.00".parse().unwrap());
        assert_eq!(eur.challenger_deposits, "24.00".parse().unwrap());
        assert_eq!(a.terms.shortened, 1);
        assert_eq!(a.terms.given_by_one_side, 1);
    }
}
