//! Test cases for policies: the format of `NAME.tests.json`, the runner used by
//! `encours policies test`, by `POST /v1/policies/{name}/versions` and by
//! activation gating, and the loader of a policies directory.
//!
//! A case runs one policy alone on a realistic input:
//! - `input.client` is deep-merged over [`default_client`] (a sound, insured,
//!   band-A client), so a case gives only what matters to it; `request` and
//!   `event` are merged over a default request or event the same way;
//! - `input.decision` seeds what earlier stages would have decided (score and
//!   band, limit, amount, terms…). The seed is a generated stage run just
//!   before the policy, so the engine needs no back door and the policy sees
//!   `decision` exactly as in production;
//! - `expect.outcome` is the decision's outcome after the policy (seed
//!   included); `expect.effects`, when given, lists the policy's effects in
//!   order, all of them: each must match on action, code and parameters
//!   (`message` only when given).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Action, Band, Baseline, ClientStatus, CompileError, CompiledPolicy, Effect, Factor, InputError,
    Outcome, PipelineResult, PolicyEngine, PolicyInput, Stage, StageTrace, Trigger, compile,
};

/// A policy's source file is `NAME.rhai`…
pub const SOURCE_SUFFIX: &str = ".rhai";
/// …and its test cases `NAME.tests.json`, next to it.
pub const TESTS_SUFFIX: &str = ".tests.json";

/// The default `credit_request` stages, in the order they run.
pub const CREDIT_REQUEST_STAGES: [&str; 7] = [
    "scoring",
    "hard_stops",
    "insured_limit",
    "exposure",
    "deposit",
    "terms",
    "review",
];
/// The default `client_event` stages, in the order they run.
pub const CLIENT_EVENT_STAGES: [&str; 2] = ["scoring", "on_event"];

/// Version given to a policy tested from a file, before it is stored.
pub const FILE_VERSION: u32 = 0;

/// Name of the generated stage that seeds `decision`; not a valid policy name,
/// so it cannot clash with the policy under test.
const SEED_STAGE: &str = "(seed)";
const SEED_CODE: &str = "TEST_SEED";
const MAX_NAME_LEN: usize = 64;

/// One test case of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// Why the case exists, for the reader (JSON has no comments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input: CaseInput,
    pub expect: Expect,
}

/// What the policy sees. Exactly one of `request` and `event`: it decides
/// which trigger the case runs under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// Merged over [`default_client`].
    #[serde(default = "empty_object")]
    pub client: Value,
    /// What earlier stages decided.
    #[serde(default, skip_serializing_if = "Seed::is_empty")]
    pub decision: Seed,
}

/// A seeded `decision`. `score` alone implies its band, `band` alone the
/// lowest score of the band. Only `score`, `band`, `factors`, `referred` and
/// `declined` apply to `client_event` cases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<Factor>>,
    /// The limit that applies (as set by `set_limit`).
    #[serde(with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub limit: Option<Decimal>,
    /// Below the requested amount only: stages can only cut it.
    #[serde(with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms_days: Option<u32>,
    #[serde(with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub deposit_percent: Option<Decimal>,
    #[serde(skip_serializing_if = "is_false")]
    pub referred: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub declined: bool,
}

/// What the decision must look like after the policy ran. Only `outcome` is
/// required; every other field is checked when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: Outcome,
    /// All the policy's effects, in order (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<Vec<ExpectedEffect>>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub deposit_percent: Option<Decimal>,
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub deposit_amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_days: Option<u32>,
    /// The limit that applied to the decision.
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub limit: Option<Decimal>,
    /// The client's new standing limit (`client_event`).
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub new_credit_limit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_status: Option<ClientStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
}

/// One expected effect: `action` and `code` (optional for `set_score`, whose
/// code is always `RISK_SCORE`), the action's parameters, `message` if given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEffect {
    pub action: EffectKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `set_limit`, `cap_amount`, `set_credit_limit`.
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
    /// `require_deposit`.
    #[serde(default, with = "opt_decimal", skip_serializing_if = "Option::is_none")]
    pub percent: Option<Decimal>,
    /// `limit_terms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// `set_score`: `score` and `band` required, `factors` compared when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<Factor>>,
}

/// The effect functions, by the name scripts call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    SetScore,
    SetLimit,
    CapAmount,
    RequireDeposit,
    LimitTerms,
    Refer,
    Decline,
    Note,
    SetCreditLimit,
    BlockClient,
    UnblockClient,
}

impl EffectKind {
    pub fn of(action: &Action) -> Self {
        match action {
            Action::SetScore { .. } => Self::SetScore,
            Action::SetLimit { .. } => Self::SetLimit,
            Action::CapAmount { .. } => Self::CapAmount,
            Action::RequireDeposit { .. } => Self::RequireDeposit,
            Action::LimitTerms { .. } => Self::LimitTerms,
            Action::Refer => Self::Refer,
            Action::Decline => Self::Decline,
            Action::Note => Self::Note,
            Action::SetCreditLimit { .. } => Self::SetCreditLimit,
            Action::BlockClient => Self::BlockClient,
            Action::UnblockClient => Self::UnblockClient,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SetScore => "set_score",
            Self::SetLimit => "set_limit",
            Self::CapAmount => "cap_amount",
            Self::RequireDeposit => "require_deposit",
            Self::LimitTerms => "limit_terms",
            Self::Refer => "refer",
            Self::Decline => "decline",
            Self::Note => "note",
            Self::SetCreditLimit => "set_credit_limit",
            Self::BlockClient => "block_client",
            Self::UnblockClient => "unblock_client",
        }
    }

    /// Parameters an expectation of this action may give, and must give
    /// (all but `factors`): a test that ignored them would prove little.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Self::SetScore => &["score", "band", "factors"],
            Self::SetLimit | Self::CapAmount | Self::SetCreditLimit => &["amount"],
            Self::RequireDeposit => &["percent"],
            Self::LimitTerms => &["days"],
            _ => &[],
        }
    }
}

impl fmt::Display for EffectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one case; `failures` are human-readable differences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOutcome {
    pub name: String,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// A case that cannot be run as written (as opposed to one that fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCase(pub String);

impl From<InputError> for InvalidCase {
    fn from(err: InputError) -> Self {
        Self(err.to_string())
    }
}

fn invalid(message: impl Into<String>) -> InvalidCase {
    InvalidCase(message.into())
}

/// A test file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("not a valid test file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("case {index} ({name:?}): {message}")]
    Invalid {
        /// 1-based.
        index: usize,
        name: String,
        message: String,
    },
    #[error("two cases are named {0:?}")]
    DuplicateName(String),
}

/// A policies directory that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Cases {
        path: PathBuf,
        #[source]
        source: CasesError,
    },
    #[error(
        "{}: a policy name is 1 to {MAX_NAME_LEN} lowercase letters, digits or _, starting with a letter",
        path.display()
    )]
    InvalidName { path: PathBuf },
    #[error("{}: no test cases next to it (expected {})", path.display(), expected.display())]
    MissingTests { path: PathBuf, expected: PathBuf },
    #[error("{}: no policy next to it (expected {})", path.display(), expected.display())]
    MissingSource { path: PathBuf, expected: PathBuf },
}

/// A policy and its cases, as read from a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    pub name: String,
    pub source: String,
    pub cases: Vec<TestCase>,
    pub path: PathBuf,
}

impl PolicyFile {
    /// The first line of the header comment, as a version description.
    pub fn description(&self) -> Option<&str> {
        self.source
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .and_then(|line| line.strip_prefix("//"))
            .map(str::trim)
            .filter(|line| !line.is_empty())
    }

    /// The default pipelines this policy belongs to (none for a new name).
    pub fn triggers(&self) -> Vec<Trigger> {
        let mut triggers = Vec::new();
        if CREDIT_REQUEST_STAGES.contains(&self.name.as_str()) {
            triggers.push(Trigger::CreditRequest);
        }
        if CLIENT_EVENT_STAGES.contains(&self.name.as_str()) {
            triggers.push(Trigger::ClientEvent);
        }
        triggers
    }
}

/// The test run of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    pub name: String,
    pub compile_error: Option<CompileError>,
    pub cases: Vec<CaseOutcome>,
}

impl FileReport {
    /// A policy without cases does not pass: nothing shows it works.
    pub fn passed(&self) -> bool {
        self.compile_error.is_none()
            && !self.cases.is_empty()
            && self.cases.iter().all(|c| c.passed)
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(err) = &self.compile_error {
            return write!(f, "{}: does not compile: {err}", self.name);
        }
        if self.cases.is_empty() {
            return write!(f, "{}: no test cases", self.name);
        }
        let failed = self.cases.iter().filter(|c| !c.passed).count();
        if failed == 0 {
            return write!(f, "{}: {} cases passed", self.name, self.cases.len());
        }
        write!(
            f,
            "{}: {failed} of {} cases failed",
            self.name,
            self.cases.len()
        )?;
        for case in self.cases.iter().filter(|c| !c.passed) {
            write!(f, "\n  FAIL {}", case.name)?;
            for failure in &case.failures {
                write!(f, "\n       {failure}")?;
            }
        }
        Ok(())
    }
}

/// Parses and checks a test file's JSON (an array of cases); also for the
/// `tests` of `POST /v1/policies/{name}/versions`.
pub fn parse_cases(json: &str) -> Result<Vec<TestCase>, CasesError> {
    let cases: Vec<TestCase> = serde_json::from_str(json)?;
    validate_cases(&cases)?;
    Ok(cases)
}

/// Checks cases deserialised elsewhere (e.g. as part of a request body):
/// each must be runnable, and names must be unique so failures can be told apart.
pub fn validate_cases(cases: &[TestCase]) -> Result<(), CasesError> {
    for (i, case) in cases.iter().enumerate() {
        case.validate().map_err(|err| CasesError::Invalid {
            index: i + 1,
            name: case.name.clone(),
            message: err.0,
        })?;
        if cases[..i].iter().any(|c| c.name == case.name) {
            return Err(CasesError::DuplicateName(case.name.clone()));
        }
    }
    Ok(())
}

/// Reads every `NAME.rhai` of `dir` with its `NAME.tests.json`, sorted by
/// name. Other files are ignored; an unpaired file is an error.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<PolicyFile>, LoadError> {
    let dir = dir.as_ref();
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let mut sources = Vec::new();
    let mut tests = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Test files first: `x.tests.json` must not be mistaken for anything else.
        let (list, name) = if let Some(name) = file_name.strip_suffix(TESTS_SUFFIX) {
            (&mut tests, name)
        } else if let Some(name) = file_name.strip_suffix(SOURCE_SUFFIX) {
            (&mut sources, name)
        } else {
            continue;
        };
        if !is_policy_name(name) {
            return Err(LoadError::InvalidName { path });
        }
        list.push((name.to_owned(), path));
    }
    for (name, path) in &tests {
        if !sources.iter().any(|(n, _)| n == name) {
            let expected = dir.join(format!("{name}{SOURCE_SUFFIX}"));
            return Err(LoadError::MissingSource {
                path: path.clone(),
                expected,
            });
        }
    }
    sources.sort();
    sources
        .into_iter()
        .map(|(name, path)| {
            let tests_path = dir.join(format!("{name}{TESTS_SUFFIX}"));
            if !tests.iter().any(|(n, _)| *n == name) {
                return Err(LoadError::MissingTests {
                    path,
                    expected: tests_path,
                });
            }
            let source = fs::read_to_string(&path).map_err(io_err(&path))?;
            let json = fs::read_to_string(&tests_path).map_err(io_err(&tests_path))?;
            let cases = parse_cases(&json).map_err(|source| LoadError::Cases {
                path: tests_path,
                source,
            })?;
            Ok(PolicyFile {
                name,
                source,
                cases,
                path,
            })
        })
        .collect()
}

/// Compiles a file's policy and runs its cases.
pub fn test_file(engine: &PolicyEngine, file: &PolicyFile) -> FileReport {
    let (compile_error, cases) = match engine.compile(&file.source) {
        Ok(policy) => (
            None,
            run_cases(engine, &file.name, FILE_VERSION, &policy, &file.cases),
        ),
        Err(err) => (Some(err), Vec::new()),
    };
    FileReport {
        name: file.name.clone(),
        compile_error,
        cases,
    }
}

/// `encours policies test DIR`: every policy of `dir` against its cases.
pub fn test_dir(
    engine: &PolicyEngine,
    dir: impl AsRef<Path>,
) -> Result<Vec<FileReport>, LoadError> {
    Ok(load_dir(dir)?
        .iter()
        .map(|file| test_file(engine, file))
        .collect())
}

/// Runs `cases` against one version of a policy. Each case runs under the
/// trigger its input names (`scoring` has cases for both). Never fails: an
/// invalid case is a failed case saying why.
pub fn run_cases(
    engine: &PolicyEngine,
    name: &str,
    version: u32,
    policy: &CompiledPolicy,
    cases: &[TestCase],
) -> Vec<CaseOutcome> {
    let stage = Stage::new(name, version, policy.clone());
    // A case must pass or fail the same on a busy CI machine as on a quiet one.
    let engine = engine.without_deadline();
    cases
        .iter()
        .map(|case| {
            let failures = run_case(&engine, &stage, case)
                .unwrap_or_else(|err| vec![format!("invalid case: {err}")]);
            CaseOutcome {
                name: case.name.clone(),
                passed: failures.is_empty(),
                failures,
            }
        })
        .collect()
}

fn run_case(
    engine: &PolicyEngine,
    stage: &Stage,
    case: &TestCase,
) -> Result<Vec<String>, InvalidCase> {
    case.validate()?;
    let input = case.input.to_policy_input()?;
    let mut stages = Vec::with_capacity(2);
    if let Some(script) = case.input.decision.script() {
        let seed = compile(&script).map_err(|e| invalid(format!("decision seed: {e}")))?;
        stages.push(Stage::new(SEED_STAGE, 0, seed));
    }
    let seeded = stages.len();
    stages.push(stage.clone());
    let result = engine.run(&stages, &input);
    if let Some(err) = result
        .trace
        .iter()
        .take(seeded)
        .find_map(|t| t.error.as_ref())
    {
        return Err(invalid(format!("decision seed refused: {}", err.message)));
    }
    let trace = result
        .trace
        .get(seeded)
        .ok_or_else(|| invalid("the policy did not run"))?;
    Ok(compare(&case.expect, &result, trace))
}

impl TestCase {
    /// Checks what serde cannot: one trigger, consistent seed, complete expectations.
    pub fn validate(&self) -> Result<(), InvalidCase> {
        if self.name.trim().is_empty() {
            return Err(invalid("a case needs a name"));
        }
        let trigger = self.input.trigger()?;
        if !self.input.client.is_object() {
            return Err(invalid("input.client must be an object"));
        }
        self.input
            .decision
            .validate(trigger)
            .map_err(|e| invalid(format!("input.decision: {e}")))?;
        for (i, effect) in self.expect.effects.iter().flatten().enumerate() {
            effect
                .validate()
                .map_err(|e| invalid(format!("expect.effects[{i}]: {e}")))?;
        }
        Ok(())
    }
}

impl CaseInput {
    /// `credit_request` with a `request`, `client_event` with an `event`.
    pub fn trigger(&self) -> Result<Trigger, InvalidCase> {
        match (&self.request, &self.event) {
            (Some(v), None) if v.is_object() => Ok(Trigger::CreditRequest),
            (None, Some(v)) if v.is_object() => Ok(Trigger::ClientEvent),
            (Some(_), None) => Err(invalid("input.request must be an object")),
            (None, Some(_)) => Err(invalid("input.event must be an object")),
            (Some(_), Some(_)) => Err(invalid(
                "give either input.request or input.event, not both",
            )),
            (None, None) => Err(invalid("input.request or input.event is required")),
        }
    }

    /// The input the policy sees, with the defaults filled in.
    pub fn to_policy_input(&self) -> Result<PolicyInput, InvalidCase> {
        let trigger = self.trigger()?;
        let client = client_view(&self.client)?;
        let currency = client
            .get("currency")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("client.currency must be a currency code"))?;
        let digits = minor_digits(currency);
        let credit_limit = client.get("credit_limit").and_then(money);
        let client_id = client.get("client_id").cloned().unwrap_or(Value::Null);
        match trigger {
            Trigger::CreditRequest => {
                let mut request = json!({
                    "request_id": "REQ-TEST-1", "client_id": client_id, "amount": "10000.00",
                    "currency": currency, "requested_terms_days": 30, "channel": "erp",
                });
                if let Some(patch) = &self.request {
                    merge(&mut request, patch);
                }
                let amount = request
                    .get("amount")
                    .and_then(money)
                    .ok_or_else(|| invalid("request.amount must be an amount like \"12500.00\""))?;
                let terms = request
                    .get("requested_terms_days")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| {
                        invalid("request.requested_terms_days must be a number of days")
                    })?;
                let baseline = Baseline::credit_request(amount, terms, credit_limit, digits);
                Ok(PolicyInput::credit_request(request, client, baseline)?)
            }
            Trigger::ClientEvent => {
                let mut event = json!({
                    "event_id": "EV-TEST-1", "client_id": client_id,
                    "occurred_at": "2026-03-02T08:00:00Z",
                });
                if let Some(patch) = &self.event {
                    merge(&mut event, patch);
                }
                if !event.get("type").is_some_and(Value::is_string) {
                    return Err(invalid("event.type is required"));
                }
                let baseline = Baseline::client_event(credit_limit, digits);
                Ok(PolicyInput::client_event(event, client, baseline)?)
            }
        }
    }
}

impl Seed {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn validate(&self, trigger: Trigger) -> Result<(), String> {
        if let Some(score) = self.score {
            if score > 100 {
                return Err(format!("score must be 0..100, got {score}"));
            }
            if let Some(band) = self.band.filter(|b| *b != band_of(score)) {
                return Err(format!(
                    "score {score} is in band {}, not {band}",
                    band_of(score)
                ));
            }
        }
        if let Some(factors) = &self.factors {
            if self.score.is_none() && self.band.is_none() {
                return Err("factors need a score or a band".into());
            }
            if let Some(f) = factors.iter().find(|f| !is_code(&f.code)) {
                return Err(format!("factor code {:?} is not UPPER_SNAKE", f.code));
            }
        }
        let request_only = self.limit.is_some()
            || self.approved_amount.is_some()
            || self.terms_days.is_some()
            || self.deposit_percent.is_some();
        if trigger == Trigger::ClientEvent && request_only {
            return Err(
                "limit, approved_amount, terms_days and deposit_percent apply to credit requests only"
                    .into(),
            );
        }
        Ok(())
    }

    /// The seed as a script of effects, or `None` when there is nothing to seed.
    /// Only validated numbers, bands and codes are written into it.
    fn script(&self) -> Option<String> {
        let mut lines = Vec::new();
        if self.score.is_some() || self.band.is_some() {
            let score = self
                .score
                .unwrap_or_else(|| self.band.map_or(0, lowest_score));
            let band = self.band.unwrap_or_else(|| band_of(score));
            let factors: Vec<String> = self
                .factors
                .iter()
                .flatten()
                .map(|f| format!("#{{code: \"{}\", points: {}}}", f.code, f.points))
                .collect();
            lines.push(format!(
                "set_score({score}, \"{band}\", [{}]);",
                factors.join(", ")
            ));
        }
        let effect = |call: &str, value: &dyn fmt::Display, what: &str| {
            format!("{call}({value}, \"{SEED_CODE}\", \"{what} seeded by the test case\");")
        };
        if let Some(limit) = self.limit {
            lines.push(effect("set_limit", &limit, "limit"));
        }
        if let Some(amount) = self.approved_amount {
            lines.push(effect("cap_amount", &amount, "approved amount"));
        }
        if let Some(days) = self.terms_days {
            lines.push(effect("limit_terms", &days, "terms"));
        }
        if let Some(percent) = self.deposit_percent {
            lines.push(effect("require_deposit", &percent, "deposit"));
        }
        if self.referred {
            lines.push(format!(
                "refer(\"{SEED_CODE}\", \"referral seeded by the test case\");"
            ));
        }
        if self.declined {
            lines.push(format!(
                "decline(\"{SEED_CODE}\", \"decline seeded by the test case\");"
            ));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

impl ExpectedEffect {
    fn validate(&self) -> Result<(), String> {
        match &self.code {
            Some(code) if !is_code(code) => {
                return Err(format!("code {code:?} is not UPPER_SNAKE"));
            }
            None if self.action != EffectKind::SetScore => {
                return Err(format!("{} needs a code", self.action));
            }
            _ => {}
        }
        let allowed = self.action.parameters();
        for (param, given) in self.given() {
            if given && !allowed.contains(&param) {
                return Err(format!("{param} is not a parameter of {}", self.action));
            }
            if !given && allowed.contains(&param) && param != "factors" {
                return Err(format!("{} needs {param}", self.action));
            }
        }
        match self.score {
            Some(score) if score > 100 => Err(format!("score must be 0..100, got {score}")),
            _ => Ok(()),
        }
    }

    fn given(&self) -> [(&'static str, bool); 6] {
        [
            ("amount", self.amount.is_some()),
            ("percent", self.percent.is_some()),
            ("days", self.days.is_some()),
            ("score", self.score.is_some()),
            ("band", self.band.is_some()),
            ("factors", self.factors.is_some()),
        ]
    }

    fn same_effect(&self, effect: &Effect) -> bool {
        self.action == EffectKind::of(&effect.action)
            && self.code.as_ref().is_none_or(|c| *c == effect.code)
    }

    /// What differs between this expectation and a matching effect.
    fn differences(&self, effect: &Effect) -> Vec<String> {
        let mut diffs = Vec::new();
        match &effect.action {
            Action::SetScore {
                score,
                band,
                factors,
            } => {
                differ(&mut diffs, "score", self.score, Some(*score));
                differ(&mut diffs, "band", self.band, Some(*band));
                if let Some(expected) = self.factors.as_ref().filter(|f| *f != factors) {
                    diffs.push(format!(
                        "expected factors {}, got {}",
                        list_factors(expected),
                        list_factors(factors)
                    ));
                }
            }
            Action::SetLimit { amount }
            | Action::CapAmount { amount }
            | Action::SetCreditLimit { amount } => {
                differ(&mut diffs, "amount", self.amount, Some(*amount));
            }
            Action::RequireDeposit { percent } => {
                differ(&mut diffs, "percent", self.percent, Some(*percent));
            }
            Action::LimitTerms { days } => differ(&mut diffs, "days", self.days, Some(*days)),
            _ => {}
        }
        if let Some(message) = self.message.as_ref().filter(|m| **m != effect.message) {
            diffs.push(format!(
                "expected message {message:?}, got {:?}",
                effect.message
            ));
        }
        diffs
    }
}

impl fmt::Display for ExpectedEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        let mut params = Vec::new();
        if let Some(score) = self.score {
            params.push(format!("score {score}"));
        }
        if let Some(band) = self.band {
            params.push(format!("band {band}"));
        }
        if let Some(factors) = &self.factors {
            params.push(format!("factors {}", list_factors(factors)));
        }
        if let Some(amount) = self.amount {
            params.push(format!("amount {amount}"));
        }
        if let Some(percent) = self.percent {
            params.push(format!("percent {percent}"));
        }
        if let Some(days) = self.days {
            params.push(format!("days {days}"));
        }
        f.write_str(&params_suffix(&params))
    }
}

/// An actual effect, written like an expectation.
pub fn describe(effect: &Effect) -> String {
    let kind = EffectKind::of(&effect.action);
    let params = match &effect.action {
        Action::SetScore {
            score,
            band,
            factors,
        } => vec![
            format!("score {score}"),
            format!("band {band}"),
            format!("factors {}", list_factors(factors)),
        ],
        Action::SetLimit { amount }
        | Action::CapAmount { amount }
        | Action::SetCreditLimit { amount } => vec![format!("amount {amount}")],
        Action::RequireDeposit { percent } => vec![format!("percent {percent}")],
        Action::LimitTerms { days } => vec![format!("days {days}")],
        _ => Vec::new(),
    };
    format!("{kind} {}{}", effect.code, params_suffix(&params))
}

/// ` (score 72, band D)`, or nothing for an action without parameters.
fn params_suffix(params: &[String]) -> String {
    if params.is_empty() {
        String::new()
    } else {
        format!(" ({})", params.join(", "))
    }
}

fn list_factors(factors: &[Factor]) -> String {
    if factors.is_empty() {
        return "[]".into();
    }
    let items: Vec<String> = factors
        .iter()
        .map(|f| format!("{} {:+}", f.code, f.points))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Records `field: expected X, got Y` when an expected value differs.
fn differ<T: PartialEq + fmt::Display>(
    out: &mut Vec<String>,
    field: &str,
    expected: Option<T>,
    actual: Option<T>,
) {
    let Some(expected) = expected else { return };
    match actual {
        Some(actual) if actual == expected => {}
        Some(actual) => out.push(format!("expected {field} {expected}, got {actual}")),
        None => out.push(format!("expected {field} {expected}, got none")),
    }
}

fn compare(expect: &Expect, result: &PipelineResult, trace: &StageTrace) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(err) = &trace.error {
        // rhai's message may end with the position already: say it once.
        let (at, message) = match (err.line, err.column) {
            (Some(l), Some(c)) => (
                format!(" at line {l}, column {c}"),
                err.message
                    .strip_suffix(&format!(" (line {l}, position {c})"))
                    .unwrap_or(&err.message),
            ),
            (Some(l), None) => (format!(" at line {l}"), err.message.as_str()),
            _ => (String::new(), err.message.as_str()),
        };
        failures.push(format!(
            "the policy failed{at} ({}): {message}",
            err.kind.describe()
        ));
        return failures;
    }
    if result.outcome != expect.outcome {
        let codes: Vec<&str> = trace.effects.iter().map(|e| e.code.as_str()).collect();
        failures.push(format!(
            "expected outcome {}, got {} (the policy's effects: {})",
            expect.outcome.as_str(),
            result.outcome.as_str(),
            if codes.is_empty() {
                "none".to_owned()
            } else {
                codes.join(", ")
            }
        ));
    }
    if let Some(expected) = &expect.effects {
        failures.extend(diff_effects(expected, &trace.effects));
    }
    let mut values = Vec::new();
    differ(
        &mut values,
        "approved_amount",
        expect.approved_amount,
        result.approved_amount,
    );
    differ(
        &mut values,
        "deposit_percent",
        expect.deposit_percent,
        Some(result.deposit_percent),
    );
    differ(
        &mut values,
        "deposit_amount",
        expect.deposit_amount,
        result.deposit_amount,
    );
    differ(
        &mut values,
        "terms_days",
        expect.terms_days,
        result.terms_days,
    );
    differ(&mut values, "limit", expect.limit, result.limit);
    differ(
        &mut values,
        "new_credit_limit",
        expect.new_credit_limit,
        result.new_credit_limit,
    );
    differ(
        &mut values,
        "client_status",
        expect.client_status.map(status_str),
        result.client_status.map(status_str),
    );
    differ(&mut values, "score", expect.score, result.score);
    differ(&mut values, "band", expect.band, result.band);
    failures.extend(values.into_iter().map(|v| format!("decision: {v}")));
    failures
}

/// Matches expectations to effects in order; the policy's extra effects are
/// reported as unexpected, the ones it did not record as missing.
fn diff_effects(expected: &[ExpectedEffect], actual: &[Effect]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut next = 0;
    for exp in expected {
        let rest = actual.get(next..).unwrap_or_default();
        match rest.iter().position(|a| exp.same_effect(a)) {
            Some(skip) => {
                for extra in &rest[..skip] {
                    failures.push(format!("unexpected effect: {}", describe(extra)));
                }
                let effect = &rest[skip];
                for diff in exp.differences(effect) {
                    failures.push(format!("effect {} {}: {diff}", exp.action, effect.code));
                }
                next += skip + 1;
            }
            None => failures.push(format!("missing effect: {exp}")),
        }
    }
    for extra in actual.get(next..).unwrap_or_default() {
        failures.push(format!("unexpected effect: {}", describe(extra)));
    }
    failures
}

fn status_str(status: ClientStatus) -> &'static str {
    match status {
        ClientStatus::Active => "active",
        ClientStatus::Blocked => "blocked",
    }
}

/// A sound client as `GET /v1/clients/{id}` shows it: active, insured for its
/// whole limit, paying on time, no alerts; the scoring policy puts it in band
/// A with no factor. Cases merge what they test over it.
pub fn default_client() -> Value {
    json!({
        "client_id": "CL-0001",
        "name": "Ateliers Martin SARL",
        "registration_number": "552 100 554",
        "country": "FR",
        "sector": "46.69",
        "currency": "EUR",
        "status": "active",
        "is_prospect": false,
        "credit_limit": "50000.00",
        "exposure": {"open_invoices": "10000.00", "reserved": "0.00", "total": "10000.00"},
        "available_credit": "40000.00",
        "overdue": {"amount": "0.00", "max_days_past_due": 0},
        "payment_behaviour": {"invoices_paid": 48, "paid_late": 2, "average_days_late": 1},
        "insurance": {"insurer": "Allianz Trade", "insured_amount": "50000.00", "valid_until": "2026-12-31"},
        "external_score": {"provider": "Ellisphere", "score": 75, "as_of": "2026-02-01"},
        "alerts": {"negative": 0, "positive": 0},
        "legal_status": "none",
        "risk": {"score": 0, "band": "A", "factors": []},
        "updated_at": "2026-03-02T08:00:00Z",
    })
}

/// [`default_client`] with `patch` deep-merged over it. Derived amounts the
/// patch leaves out follow the ones it changes, as the API computes them:
/// `exposure.total` = open invoices + reserved, `available_credit` = limit − total.
pub fn client_view(patch: &Value) -> Result<Value, InvalidCase> {
    if !patch.is_object() {
        return Err(invalid("client must be an object"));
    }
    let mut client = default_client();
    merge(&mut client, patch);
    let given = |pointer: &str| patch.pointer(pointer).is_some();
    let amount = |client: &Value, pointer: &str| {
        client.pointer(pointer).and_then(money).ok_or_else(|| {
            invalid(format!(
                "client{} must be an amount",
                pointer.replace('/', ".")
            ))
        })
    };
    if !given("/exposure/total")
        && (given("/exposure/open_invoices") || given("/exposure/reserved"))
    {
        let total =
            amount(&client, "/exposure/open_invoices")? + amount(&client, "/exposure/reserved")?;
        client["exposure"]["total"] = Value::String(total.to_string());
    }
    if !given("/available_credit") && (given("/credit_limit") || given("/exposure")) {
        let available = amount(&client, "/credit_limit")? - amount(&client, "/exposure/total")?;
        client["available_credit"] = Value::String(available.to_string());
    }
    Ok(client)
}

/// Deep merge: objects merge key by key, anything else (arrays and `null`
/// included) replaces what was there.
pub fn merge(base: &mut Value, patch: &Value) {
    if let (Value::Object(base), Value::Object(patch)) = (&mut *base, patch) {
        for (key, value) in patch {
            match base.get_mut(key) {
                Some(slot) => merge(slot, value),
                None => {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        return;
    }
    *base = patch.clone();
}

/// ISO 4217 minor digits: most currencies have 2.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// A JSON amount: a plain decimal string or a number, exactly.
fn money(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.contains(['e', 'E', '+', ' ']) {
        return None;
    }
    Decimal::from_str_exact(&text).ok()
}

fn band_of(score: u8) -> Band {
    match score {
        0..=19 => Band::A,
        20..=39 => Band::B,
        40..=59 => Band::C,
        60..=79 => Band::D,
        _ => Band::E,
    }
}

fn lowest_score(band: Band) -> u8 {
    match band {
        Band::A => 0,
        Band::B => 20,
        Band::C => 40,
        Band::D => 60,
        Band::E => 80,
    }
}

fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_NAME_LEN
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Amounts in test files: a decimal string (`"12500.00"`) or a JSON number,
/// read exactly; written back as strings.
mod opt_decimal {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(value) => super::money(&value).map(Some).ok_or_else(|| {
                D::Error::custom(format!("expected an amount like \"12500.00\", got {value}"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(json: Value) -> Result<Vec<TestCase>, CasesError> {
        parse_cases(&json.to_string())
    }

    #[test]
    fn merge_is_deep_and_null_or_arrays_replace() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": {"f": 1}});
        merge(
            &mut base,
            &json!({"a": {"b": 9}, "d": [3], "e": null, "g": "new"}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 9, "c": 2}, "d": [3], "e": null, "g": "new"})
        );
    }

    #[test]
    fn client_view_recomputes_derived_amounts_unless_given() {
        let view = client_view(&json!({"exposure": {"reserved": "2500.50"}})).unwrap();
        assert_eq!(view["exposure"]["total"], "12500.50");
        assert_eq!(view["available_credit"], "37499.50");
        let view = client_view(&json!({"credit_limit": 0})).unwrap();
        assert_eq!(view["available_credit"], "-10000.00");
        let view = client_view(&json!({"exposure": {"total": "1.00"}, "available_credit": "7.00"}))
            .unwrap();
        assert_eq!(
            (
                view["exposure"]["total"].clone(),
                view["available_credit"].clone()
            ),
            (json!("1.00"), json!("7.00"))
        );
    }

    #[test]
    fn a_minimal_case_parses_and_serialises_back() {
        let json = json!([{
            "name": "band D", "input": {"request": {"amount": "12500.00"}, "decision": {"band": "D"}},
            "expect": {"outcome": "conditional", "deposit_percent": 30,
                       "effects": [{"action": "require_deposit", "code": "DEPOSIT_BAND_D", "percent": "30"}]}
        }]);
        let cases = case(json.clone()).unwrap();
        assert_eq!(cases[0].expect.deposit_percent, Some(Decimal::from(30)));
        assert_eq!(
            cases[0].input.decision.script().unwrap(),
            "set_score(60, \"D\", []);"
        );
        let back = serde_json::to_value(&cases).unwrap();
        assert_eq!(back[0]["expect"]["effects"][0]["percent"], "30");
        assert_eq!(back[0]["input"]["decision"], json!({"band": "D"}));
    }

    #[test]
    fn bad_cases_are_refused_with_a_reason() {
        let base =
            |input: Value, expect: Value| json!([{"name": "x", "input": input, "expect": expect}]);
        let ok_expect = json!({"outcome": "approved"});
        let req = json!({"request": {}});
        for (json, needle) in [
            (
                base(json!({}), ok_expect.clone()),
                "input.request or input.event",
            ),
            (
                base(json!({"request": {}, "event": {}}), ok_expect.clone()),
                "not both",
            ),
            (
                base(
                    json!({"request": {}, "decision": {"score": 72, "band": "C"}}),
                    ok_expect.clone(),
                ),
                "score 72 is in band D, not C",
            ),
            (
                base(
                    json!({"event": {"type": "x"}, "decision": {"limit": "1.00"}}),
                    ok_expect.clone(),
                ),
                "credit requests only",
            ),
            (
                base(
                    req.clone(),
                    json!({"outcome": "approved", "effects": [{"action": "refer"}]}),
                ),
                "refer needs a code",
            ),
            (
                base(
                    req.clone(),
                    json!({"outcome": "approved", "effects": [{"action": "require_deposit", "code": "D"}]}),
                ),
                "require_deposit needs percent",
            ),
            (
                base(
                    req.clone(),
                    json!({"outcome": "approved", "effects": [{"action": "decline", "code": "D", "days": 3}]}),
                ),
                "days is not a parameter of decline",
            ),
            (
                base(req.clone(), json!({"outcome": "aproved"})),
                "unknown variant",
            ),
            (
                base(req.clone(), json!({"outcome": "approved", "efects": []})),
                "unknown field",
            ),
            (
                base(
                    req.clone(),
                    json!({"outcome": "approved", "approved_amount": "1e3"}),
                ),
                "expected an amount",
            ),
        ] {
            let err = case(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
        let twice = json!([
            {"name": "a", "input": {"request": {}}, "expect": {"outcome": "approved"}},
            {"name": "a", "input": {"request": {}}, "expect": {"outcome": "approved"}},
        ]);
        assert!(matches!(case(twice), Err(CasesError::DuplicateName(_))));
    }

    #[test]
    fn failures_say_what_differs() {
        let engine = PolicyEngine::default();
        let policy = engine
            .compile(
                r#"note("FIRST", "m"); require_deposit(25, "DEPOSIT_BAND_D", "m"); refer("EXTRA", "m");"#,
            )
            .unwrap();
        let cases = case(json!([{
            "name": "diff", "input": {"request": {"amount": "1000.00"}},
            "expect": {"outcome": "conditional", "deposit_amount": "300.00", "effects": [
                {"action": "require_deposit", "code": "DEPOSIT_BAND_D", "percent": 30},
                {"action": "limit_terms", "code": "TERMS_BAND_D", "days": 15}
            ]}
        }]))
        .unwrap();
        let outcome = &run_cases(&engine, "deposit", 3, &policy, &cases)[0];
        assert!(!outcome.passed);
        assert_eq!(
            outcome.failures,
            [
                "expected outcome conditional, got review (the policy's effects: FIRST, DEPOSIT_BAND_D, EXTRA)",
                "unexpected effect: note FIRST",
                "effect require_deposit DEPOSIT_BAND_D: expected percent 30, got 25",
                "missing effect: limit_terms TERMS_BAND_D (days 15)",
                "unexpected effect: refer EXTRA",
                "decision: expected deposit_amount 300.00, got 250.00",
            ]
        );
    }

    #[test]
    fn a_failing_policy_or_seed_is_reported() {
        let engine = PolicyEngine::default();
        let policy = engine.compile("let x = 1;\nclient.nope").unwrap();
        let cases = case(json!([
            {"name": "err", "input": {"request": {}}, "expect": {"outcome": "approved"}},
            {"name": "seed", "input": {"request": {}, "decision": {"limit": "1.005"}},
             "expect": {"outcome": "approved"}},
        ]))
        .unwrap();
        let outcomes = run_cases(&engine, "p", 1, &policy, &cases);
        assert_eq!(
            outcomes[0].failures,
            ["the policy failed at line 2, column 8 (runtime error): Property not found: nope"]
        );
        assert!(
            outcomes[1].failures[0].starts_with("invalid case: decision seed refused: ")
                && outcomes[1].failures[0]
                    .contains("set_limit: amount 1.005 has more than 2 decimals"),
            "{outcomes:?}"
        );
    }

    #[test]
    fn load_dir_pairs_files_and_says_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("encours-policies-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| fs::write(dir.join(name), text).unwrap();
        write("notes.md", "ignored");
        write("deposit.rhai", "// Deposit: test.\nnote(\"X\", \"m\");");
        let err = load_dir(&dir).unwrap_err();
        assert!(matches!(err, LoadError::MissingTests { .. }), "{err}");
        write("deposit.tests.json", "[{\"name\": \"x\", \"input\": {}}]");
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("deposit.tests.json: not a valid test file: missing field `expect`"),
            "{err}"
        );
        write(
            "deposit.tests.json",
            r#"[{"name": "x", "input": {"request": {}}, "expect": {"outcome": "approved",
                 "effects": [{"action": "note", "code": "X"}]}}]"#,
        );
        let files = load_dir(&dir).unwrap();
        assert_eq!(files[0].description(), Some("Deposit: test."));
        assert!(test_file(&PolicyEngine::default(), &files[0]).passed());
        write("Bad-Name.rhai", "");
        assert!(matches!(load_dir(&dir), Err(LoadError::InvalidName { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn report_lists_failures() {
        let report = FileReport {
            name: "deposit".into(),
            compile_error: None,
            cases: vec![
                CaseOutcome {
                    name: "ok".into(),
                    passed: true,
                    failures: vec![],
                },
                CaseOutcome {
                    name: "band D".into(),
                    passed: false,
                    failures: vec!["why".into()],
                },
            ],
        };
        assert!(!report.passed());
        assert_eq!(
            report.to_string(),
            "deposit: 1 of 2 cases failed\n  FAIL band D\n       why"
        );
    }
}
