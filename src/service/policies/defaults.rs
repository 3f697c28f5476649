//! The default policy set, embedded in the binary and loaded into an empty database as
//! version 1 by `system`. A stage already in the database is never touched again, so later
//! versions written by credit managers always win.

use serde_json::json;

use super::{ServiceError, record_activation};
use crate::audit::{self, Entry};
use crate::policy::PolicyEngine;
use crate::store::policies::{self as table, PolicyRow, VersionRow};
use crate::store::{AnyConnection, write_tx};

pub const AUTHOR: &str = "system";

/// One shipped stage: name, which pipeline(s), position, source, test cases.
pub struct Default {
    pub name: &'static str,
    pub trigger: &'static str,
    pub position: i32,
    pub source: &'static str,
    pub tests: &'static str,
}

macro_rules! shipped {
    ($($name:literal: $trigger:literal @ $position:literal),+ $(,)?) => {
        &[$(Default {
            name: $name,
            trigger: $trigger,
            position: $position,
            source: include_str!(concat!("../../../policies/", $name, ".rhai")),
            tests: include_str!(concat!("../../../policies/", $name, ".tests.json")),
        }),+]
    };
}

/// Pipeline order: scoring runs first for both triggers.
pub const DEFAULTS: &[Default] = shipped!(
    "scoring": "both" @ 10,
    "hard_stops": "credit_request" @ 20,
    "insured_limit": "credit_request" @ 30,
    "exposure": "credit_request" @ 40,
    "deposit": "credit_request" @ 50,
    "terms": "credit_request" @ 60,
    "review": "credit_request" @ 70,
    "on_event": "client_event" @ 80,
);

/// Loads every shipped stage the database does not have yet; returns the names loaded.
pub fn seed(
    conn: &mut AnyConnection,
    engine: &PolicyEngine,
) -> Result<Vec<&'static str>, ServiceError> {
    write_tx(conn, |conn| {
        let mut loaded = Vec::new();
        for d in DEFAULTS {
            if table::get_locked(conn, d.name)?.is_some() {
                continue;
            }
            let compiled = engine.compile(d.source).map_err(|e| {
                ServiceError::Internal(format!("shipped policy {} does not compile: {e}", d.name))
            })?;
            super::check_tests(engine, d.name, 1, &compiled, d.tests)?;
            let now = super::now();
            table::insert_policy(
                conn,
                &PolicyRow {
                    name: d.name.into(),
                    trigger_name: d.trigger.into(),
                    position: d.position,
                    active_version: None,
                    created_at: now,
                },
            )?;
            let version = VersionRow {
                policy: d.name.into(),
                version: 1,
                source: d.source.into(),
                sha256: compiled.sha256().into(),
                description: "Shipped default".into(),
                author: AUTHOR.into(),
                tests: d.tests.into(),
                created_at: now,
            };
            table::insert_version(conn, &version)?;
            audit::append(
                conn,
                Entry::on_policy(
                    "policy.version_created",
                    d.name,
                    AUTHOR,
                    super::version_payload(&version),
                ),
            )?;
            record_activation(conn, &version, AUTHOR, json!(null))?;
            loaded.push(d.name);
        }
        Ok(loaded)
    })
}
