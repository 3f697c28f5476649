//! The effect functions: the only way a script acts. Each validates its
//! arguments (a bad one is a policy runtime error, never a silent clamp) and
//! records into the running evaluation's frame.

use std::fmt;
use std::str::FromStr;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Trigger;
use super::engine::{Frame, with_frame};
use super::money::{amount_arg, percent_arg};

/// Codes the engine writes itself; scripts may not forge them.
pub const POLICY_ERROR: &str = "POLICY_ERROR";
pub const RISK_SCORE: &str = "RISK_SCORE";
const MAX_CODE_LEN: usize = 64;
const MAX_MESSAGE_CHARS: usize = 1_000;
const MAX_FACTORS: usize = 64;
const MAX_TERMS_DAYS: i64 = 3_650;

/// Risk band, A (safest) to E.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Band {
    A,
    B,
    C,
    D,
    E,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::A => "A",
            Band::B => "B",
            Band::C => "C",
            Band::D => "D",
            Band::E => "E",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Band {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "A" => Ok(Band::A),
            "B" => Ok(Band::B),
            "C" => Ok(Band::C),
            "D" => Ok(Band::D),
            "E" => Ok(Band::E),
            _ => Err(format!("band must be one of A, B, C, D, E, got {s:?}")),
        }
    }
}

/// One contribution to the risk score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    pub code: String,
    pub points: i64,
}

/// What an effect does; the engine composes these into the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    SetScore {
        score: u8,
        band: Band,
        factors: Vec<Factor>,
    },
    SetLimit {
        amount: Decimal,
    },
    CapAmount {
        amount: Decimal,
    },
    RequireDeposit {
        percent: Decimal,
    },
    LimitTerms {
        days: u32,
    },
    Refer,
    Decline,
    Note,
    SetCreditLimit {
        amount: Decimal,
    },
    BlockClient,
    UnblockClient,
}

/// An effect as recorded by a script, before the stage names it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub action: Action,
    pub code: String,
    pub message: String,
    /// `set_score`'s factors as the script passed them, when that is exactly
    /// how `decision.factors` shows them (see `Composition::show_factors`).
    pub shown: Option<Dynamic>,
}

/// An effect with the policy version that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub policy: String,
    pub policy_version: u32,
    #[serde(flatten)]
    pub action: Action,
    pub code: String,
    pub message: String,
}

/// One line of a decision's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    pub policy: String,
    pub policy_version: u32,
}

impl Effect {
    pub(crate) fn new(policy: &str, policy_version: u32, recorded: Recorded) -> Self {
        Self {
            policy: policy.to_owned(),
            policy_version,
            action: recorded.action,
            code: recorded.code,
            message: recorded.message,
        }
    }

    /// Every effect is a reason: the explanation is complete by construction.
    pub fn reason(&self) -> Reason {
        Reason {
            code: self.code.clone(),
            message: self.message.clone(),
            policy: self.policy.clone(),
            policy_version: self.policy_version,
        }
    }
}

type FnResult = Result<(), Box<EvalAltResult>>;

pub(crate) fn register(engine: &mut Engine) {
    use Trigger::{ClientEvent, CreditRequest};
    engine.register_fn(
        "set_score",
        |score: Dynamic, band: Dynamic, factors: Dynamic| set_score(score, band, factors),
    );
    engine.register_fn("set_score", |score: Dynamic, band: Dynamic| {
        set_score(score, band, Dynamic::from_array(Vec::new()))
    });
    engine.register_fn(
        "set_limit",
        |amount: Dynamic, code: Dynamic, msg: Dynamic| {
            record("set_limit", Some(CreditRequest), code, msg, |f| {
                amount_arg("set_limit", &amount, f.minor_digits)
                    .map(|amount| Action::SetLimit { amount })
            })
        },
    );
    engine.register_fn(
        "cap_amount",
        |amount: Dynamic, code: Dynamic, msg: Dynamic| {
            record("cap_amount", Some(CreditRequest), code, msg, |f| {
                amount_arg("cap_amount", &amount, f.minor_digits)
                    .map(|amount| Action::CapAmount { amount })
            })
        },
    );
    engine.register_fn(
        "require_deposit",
        |percent: Dynamic, code: Dynamic, msg: Dynamic| {
            record("require_deposit", Some(CreditRequest), code, msg, |_| {
                percent_arg("require_deposit", &percent)
                    .map(|percent| Action::RequireDeposit { percent })
            })
        },
    );
    engine.register_fn(
        "limit_terms",
        |days: Dynamic, code: Dynamic, msg: Dynamic| {
            record("limit_terms", Some(CreditRequest), code, msg, |_| {
                days_arg(&days).map(|days| Action::LimitTerms { days })
            })
        },
    );
    engine.register_fn(
        "set_credit_limit",
        |amount: Dynamic, code: Dynamic, msg: Dynamic| {
            record("set_credit_limit", Some(ClientEvent), code, msg, |f| {
                amount_arg("set_credit_limit", &amount, f.minor_digits)
                    .map(|amount| Action::SetCreditLimit { amount })
            })
        },
    );
    engine.register_fn("refer", |code: Dynamic, msg: Dynamic| {
        record("refer", None, code, msg, |_| Ok(Action::Refer))
    });
    engine.register_fn("decline", |code: Dynamic, msg: Dynamic| {
        record("decline", None, code, msg, |_| Ok(Action::Decline))
    });
    engine.register_fn("note", |code: Dynamic, msg: Dynamic| {
        record("note", None, code, msg, |_| Ok(Action::Note))
    });
    engine.register_fn("block_client", |code: Dynamic, msg: Dynamic| {
        record("block_client", Some(ClientEvent), code, msg, |_| {
            Ok(Action::BlockClient)
        })
    });
    engine.register_fn("unblock_client", |code: Dynamic, msg: Dynamic| {
        record("unblock_client", Some(ClientEvent), code, msg, |_| {
            Ok(Action::UnblockClient)
        })
    });
}

/// Validates the reason, checks the trigger and the effect budget, then records.
fn record(
    func: &str,
    only: Option<Trigger>,
    code: Dynamic,
    message: Dynamic,
    action: impl FnOnce(&Frame) -> Result<Action, String>,
) -> FnResult {
    let code = code_arg(func, code)?;
    let message = message_arg(func, message)?;
    push(func, only, code, message, action)
}

fn push(
    func: &str,
    only: Option<Trigger>,
    code: String,
    message: String,
    action: impl FnOnce(&Frame) -> Result<Action, String>,
) -> FnResult {
    push_shown(func, only, code, message, None, action)
}

fn push_shown(
    func: &str,
    only: Option<Trigger>,
    code: String,
    message: String,
    shown: Option<Dynamic>,
    action: impl FnOnce(&Frame) -> Result<Action, String>,
) -> FnResult {
    with_frame(|frame| {
        if let Some(trigger) = only.filter(|t| *t != frame.trigger) {
            return Err(format!("{func} is only available in {trigger} policies"));
        }
        if frame.max_effects > 0 && frame.effects.len() >= frame.max_effects {
            return Err(format!(
                "{func}: a stage may record at most {} effects",
                frame.max_effects
            ));
        }
        let action = action(frame)?;
        frame.effects.push(Recorded {
            action,
            code,
            message,
            shown,
        });
        Ok(())
    })
    .map_err(Into::into)
}

fn set_score(score: Dynamic, band: Dynamic, factors: Dynamic) -> FnResult {
    let score = score
        .as_int()
        .ok()
        .and_then(|s| u8::try_from(s).ok())
        .filter(|s| *s <= 100)
        .ok_or_else(|| format!("set_score: score must be an integer 0..=100, got {score}"))?;
    let band: Band = string_arg("set_score", "band", band)?
        .parse()
        .map_err(|e| format!("set_score: {e}"))?;
    let (list, plain) = factors_arg(&factors)?;
    let message = score_message(score, band, &list);
    let action = Action::SetScore {
        score,
        band,
        factors: list,
    };
    let shown = plain.then_some(factors);
    push_shown(
        "set_score",
        None,
        RISK_SCORE.to_owned(),
        message,
        shown,
        |_| Ok(action),
    )
}

/// `risk score 72, band D: DAYS_PAST_DUE +40, EXTERNAL_SCORE_STRONG -5`, written
/// without `format!` (a risky client's score lists about eight factors).
fn score_message(score: u8, band: Band, factors: &[Factor]) -> String {
    let mut numbers = itoa::Buffer::new();
    let mut message = String::with_capacity(32 + 24 * factors.len());
    message.push_str("risk score ");
    message.push_str(numbers.format(score));
    message.push_str(", band ");
    message.push_str(band.as_str());
    for (i, factor) in factors.iter().filter(|f| f.points != 0).enumerate() {
        message.push_str(if i == 0 { ": " } else { ", " });
        message.push_str(&factor.code);
        message.push_str(if factor.points < 0 { " " } else { " +" });
        message.push_str(numbers.format(factor.points));
    }
    message
}

/// The factors, and whether the array holds nothing else: unshared maps of
/// exactly `code` and `points`, as `decision.factors` shows them.
fn factors_arg(factors: &Dynamic) -> Result<(Vec<Factor>, bool), String> {
    let items = factors.read_lock::<Array>().ok_or_else(|| {
        format!(
            "set_score: factors must be an array, got {}",
            factors.type_name()
        )
    })?;
    if items.len() > MAX_FACTORS {
        return Err(format!("set_score: at most {MAX_FACTORS} factors"));
    }
    let mut plain = !factors.is_shared();
    let mut list = Vec::with_capacity(items.len());
    for item in items.iter() {
        let map = item.read_lock::<Map>().ok_or_else(|| {
            "set_score: each factor must be a map #{code: \"…\", points: n}".to_owned()
        })?;
        let code = map.get("code");
        let points = map.get("points");
        plain &= map.len() == 2
            && !item.is_shared()
            && code.is_some_and(|c| !c.is_shared())
            && points.is_some_and(|p| !p.is_shared());
        let code = code
            .and_then(|c| {
                c.read_lock::<rhai::ImmutableString>()
                    .map(|c| c.to_string())
            })
            .filter(|c| valid_code(c))
            .ok_or("set_score: factor code must be a reason code like \"DAYS_PAST_DUE\"")?;
        let points = points
            .and_then(|p| p.as_int().ok())
            .ok_or("set_score: factor points must be an integer")?;
        list.push(Factor { code, points });
    }
    Ok((list, plain))
}

fn days_arg(days: &Dynamic) -> Result<u32, String> {
    days.as_int()
        .ok()
        .filter(|d| (0..=MAX_TERMS_DAYS).contains(d))
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| {
            format!("limit_terms: days must be an integer 0..={MAX_TERMS_DAYS}, got {days}")
        })
}

fn string_arg(func: &str, what: &str, value: Dynamic) -> Result<String, String> {
    value
        .into_string()
        .map_err(|t| format!("{func}: {what} must be a string, got {t}"))
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn code_arg(func: &str, code: Dynamic) -> Result<String, String> {
    let code = string_arg(func, "code", code)?;
    if !valid_code(&code) {
        return Err(format!(
            "{func}: code must be 1..={MAX_CODE_LEN} of A-Z, 0-9, _ starting with a letter, got {code:?}"
        ));
    }
    if code == POLICY_ERROR || code == RISK_SCORE {
        return Err(format!("{func}: code {code} is reserved for the engine"));
    }
    Ok(code)
}

fn message_arg(func: &str, message: Dynamic) -> Result<String, String> {
    let message = string_arg(func, "message", message)?;
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Err(format!("{func}: message must not be empty"));
    }
    if trimmed.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!(
            "{func}: message longer than {MAX_MESSAGE_CHARS} characters"
        ));
    }
    Ok(trimmed.to_owned())
}
