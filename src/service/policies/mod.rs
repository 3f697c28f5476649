//! Policies as a credit manager works with them: read, submit a version (compiled and tested
//! first), activate it (four-eyes), and the process-wide registry of active versions.

pub mod defaults;
pub mod registry;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use super::{CaseFailure, ServiceError, capture};
use crate::audit::{self, AuditRef, Entry};
use crate::policy::testing::{self, TestCase};
use crate::policy::{CompiledPolicy, PolicyEngine};
/// How many stages this process ran compiled and interpreted (for `/metrics`).
pub use crate::policy::{StageRuns, stage_runs};
use crate::store::captured;
use crate::store::policies::{self as table, ActivationRow, PolicyRow, VersionRow};
use crate::store::{AnyConnection, Store, write_tx_retrying};
pub use registry::{ActiveSet, PolicyRegistry};

pub(crate) fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

/// A stage with its versions and activation history.
#[derive(Debug)]
pub struct PolicyDetail {
    pub policy: PolicyRow,
    pub versions: Vec<VersionRow>,
    pub activations: Vec<ActivationRow>,
    /// (version, captured case) for each case a version knowingly changes.
    pub supersedes: Vec<(i32, String)>,
}

pub async fn list(store: &Store) -> Result<Vec<PolicyDetail>, ServiceError> {
    store
        .run(|conn| {
            table::list(conn)?
                .into_iter()
                .map(|policy| detail_of(conn, policy))
                .collect()
        })
        .await
}

pub async fn get(store: &Store, name: String) -> Result<PolicyDetail, ServiceError> {
    store
        .run(move |conn| {
            let policy = table::get(conn, &name)?.ok_or_else(|| unknown_policy(&name))?;
            detail_of(conn, policy)
        })
        .await
}

fn detail_of(conn: &mut AnyConnection, policy: PolicyRow) -> Result<PolicyDetail, ServiceError> {
    Ok(PolicyDetail {
        versions: table::versions(conn, &policy.name)?,
        activations: table::activations(conn, &policy.name)?,
        supersedes: captured::superseded(conn, &policy.name)?,
        policy,
    })
}

/// What a credit manager submits.
#[derive(Debug)]
pub struct Submission {
    pub source: String,
    pub description: String,
    /// `None` carries over the active version's cases: a change must still pass them.
    pub tests: Option<Vec<TestCase>>,
    /// Captured cases this version knowingly changes: kept with it, not run against it.
    pub supersedes: Vec<String>,
}

/// Compiles, tests (its own cases, then the captured cases of decisions the policy took part
/// in) and stores a new (inactive) version.
pub async fn submit(
    store: &Store,
    engine: PolicyEngine,
    name: String,
    submission: Submission,
    author: String,
) -> Result<(VersionRow, AuditRef), ServiceError> {
    let compiled = engine
        .compile(&submission.source)
        .map_err(ServiceError::PolicyCompile)?;
    store
        .run(move |conn| {
            write_tx_retrying(conn, |conn| {
                let policy =
                    table::get_locked(conn, &name)?.ok_or_else(|| unknown_policy(&name))?;
                let tests = match &submission.tests {
                    Some(cases) => serde_json::to_string(cases)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                    None => match policy.active_version {
                        Some(v) => table::version(conn, &name, v)?
                            .map(|row| row.tests)
                            .unwrap_or_else(|| "[]".into()),
                        None => "[]".into(),
                    },
                };
                let number = table::latest_version_number(conn, &name)? + 1;
                let supersedes = &submission.supersedes;
                capture::check_supersedes(conn, &name, supersedes)?;
                check_tests(&engine, &name, number, &compiled, &tests)?;
                capture::check_version(conn, &engine, &name, number, &compiled, supersedes)?;
                let version = VersionRow {
                    policy: name.clone(),
                    version: number,
                    source: submission.source.clone(),
                    sha256: compiled.sha256().into(),
                    description: submission.description.clone(),
                    author: author.clone(),
                    tests,
                    created_at: now(),
                };
                table::insert_version(conn, &version)?;
                captured::supersede(conn, &name, number, supersedes)?;
                let mut payload = version_payload(&version);
                if !supersedes.is_empty() {
                    payload["supersedes"] = json!(supersedes);
                }
                let audit = audit::append(
                    conn,
                    Entry::on_policy("policy.version_created", &name, &author, payload),
                )?;
                Ok((version, audit))
            })
        })
        .await
}

/// Puts a version live. Its test cases and the captured cases it does not supersede run again
/// (the engine, or the captured cases, may have changed since it was submitted); with
/// four-eyes on, its author may not be the one who activates it.
pub async fn activate(
    store: &Store,
    engine: PolicyEngine,
    four_eyes: bool,
    name: String,
    number: i32,
    actor: String,
) -> Result<(VersionRow, AuditRef), ServiceError> {
    store
        .run(move |conn| {
            write_tx_retrying(conn, |conn| {
                let (policy, version) = stage_and_version(conn, &name, number, true)?;
                if four_eyes && version.author == actor {
                    return Err(ServiceError::FourEyesRequired(format!(
                        "`{actor}` wrote version {number} of `{name}`; someone else must activate it"
                    )));
                }
                if policy.active_version == Some(number) {
                    return Err(ServiceError::Conflict(format!(
                        "version {number} of `{name}` is already active"
                    )));
                }
                let compiled = engine
                    .compile(&version.source)
                    .map_err(ServiceError::PolicyCompile)?;
                check_tests(&engine, &name, number, &compiled, &version.tests)?;
                let supersedes = capture::superseded_by(conn, &name, number)?;
                capture::check_version(conn, &engine, &name, number, &compiled, &supersedes)?;
                let audit = record_activation(conn, &version, &actor, json!(policy.active_version))?;
                Ok((version, audit))
            })
        })
        .await
}

/// Makes `version` the active one, bumps the generation and records who did it.
pub(crate) fn record_activation(
    conn: &mut AnyConnection,
    version: &VersionRow,
    actor: &str,
    previous: Value,
) -> Result<AuditRef, ServiceError> {
    table::set_active(conn, &version.policy, version.version)?;
    let generation = table::bump_generation(conn)?;
    let audit = audit::append(
        conn,
        Entry::on_policy(
            "policy.activated",
            &version.policy,
            actor,
            json!({
                "policy": version.policy,
                "version": version.version,
                "sha256": version.sha256,
                "previous_version": previous,
                "generation": generation,
            }),
        ),
    )?;
    table::insert_activation(
        conn,
        &ActivationRow {
            policy: version.policy.clone(),
            version: version.version,
            activated_by: actor.to_owned(),
            activated_at: now(),
            audit_sequence: audit.sequence,
        },
    )?;
    Ok(audit)
}

/// The audit payload of a new version: everything needed to rebuild it.
pub(crate) fn version_payload(v: &VersionRow) -> Value {
    json!({
        "policy": v.policy,
        "version": v.version,
        "sha256": v.sha256,
        "source": v.source,
        "description": v.description,
        "author": v.author,
        "tests": serde_json::from_str::<Value>(&v.tests).unwrap_or(Value::Null),
    })
}

/// Runs a version's test cases; any failure refuses the version.
pub(crate) fn check_tests(
    engine: &PolicyEngine,
    name: &str,
    number: i32,
    compiled: &CompiledPolicy,
    tests_json: &str,
) -> Result<(), ServiceError> {
    let cases = testing::parse_cases(tests_json)
        .map_err(|e| ServiceError::invalid("tests", e.to_string()))?;
    if cases.is_empty() {
        return Err(ServiceError::invalid(
            "tests",
            "a version needs at least one test case: they are what gates its activation",
        ));
    }
    let version = u32::try_from(number).unwrap_or_default();
    let failures: Vec<CaseFailure> = testing::run_cases(engine, name, version, compiled, &cases)
        .into_iter()
        .filter(|outcome| !outcome.passed)
        .map(|outcome| CaseFailure {
            policy: name.to_owned(),
            case: outcome.name,
            failures: outcome.failures,
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::PolicyTestFailed(failures))
    }
}

fn unknown_policy(name: &str) -> ServiceError {
    ServiceError::NotFound {
        what: format!("policy `{name}`"),
    }
}

/// A stored version, or 404 naming it.
pub(crate) fn stored_version(
    conn: &mut AnyConnection,
    name: &str,
    number: i32,
) -> Result<VersionRow, ServiceError> {
    table::version(conn, name, number)?.ok_or_else(|| ServiceError::NotFound {
        what: format!("version {number} of policy `{name}`"),
    })
}

/// A stage (its row locked until the transaction ends when `lock`) and one of its versions,
/// or 404 naming the one that does not exist.
pub(crate) fn stage_and_version(
    conn: &mut AnyConnection,
    name: &str,
    number: i32,
    lock: bool,
) -> Result<(PolicyRow, VersionRow), ServiceError> {
    let policy = if lock {
        table::get_locked(conn, name)?
    } else {
        table::get(conn, name)?
    }
    .ok_or_else(|| unknown_policy(name))?;
    Ok((policy, stored_version(conn, name, number)?))
}
