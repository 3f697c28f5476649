//! Policy tables: stages, immutable versions, activations and the generation counter.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{policies, policy_activations, policy_generation, policy_versions};
use super::{AnyConnection, StoreError, classify};

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = policies)]
pub struct PolicyRow {
    pub name: String,
    pub trigger_name: String,
    pub position: i32,
    pub active_version: Option<i32>,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = policy_versions)]
pub struct VersionRow {
    pub policy: String,
    pub version: i32,
    pub source: String,
    pub sha256: String,
    pub description: String,
    pub author: String,
    /// The version's test cases, as JSON.
    pub tests: String,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = policy_activations)]
pub struct ActivationRow {
    pub policy: String,
    pub version: i32,
    pub activated_by: String,
    pub activated_at: NaiveDateTime,
    pub audit_sequence: i64,
}

pub fn list(conn: &mut AnyConnection) -> Result<Vec<PolicyRow>, StoreError> {
    policies::table
        .order((policies::trigger_name.asc(), policies::position.asc()))
        .select(PolicyRow::as_select())
        .load(conn)
        .map_err(classify)
}

pub fn get(conn: &mut AnyConnection, name: &str) -> Result<Option<PolicyRow>, StoreError> {
    policies::table
        .find(name)
        .select(PolicyRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

/// Reads the policy and, on PostgreSQL, locks its row: version numbers and activations of
/// one policy are then taken one at a time (SQLite's write transaction holds the lock already).
pub fn get_locked(conn: &mut AnyConnection, name: &str) -> Result<Option<PolicyRow>, StoreError> {
    let by_name = || policies::table.find(name);
    let row = match conn {
        AnyConnection::Postgres(pg) => by_name()
            .select(PolicyRow::as_select())
            .for_update()
            .get_result(pg)
            .optional(),
        AnyConnection::Sqlite(lite) => by_name()
            .select(PolicyRow::as_select())
            .get_result(lite)
            .optional(),
    };
    row.map_err(classify)
}

pub fn insert_policy(conn: &mut AnyConnection, row: &PolicyRow) -> Result<(), StoreError> {
    diesel::insert_into(policies::table)
        .values(row)
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

pub fn versions(conn: &mut AnyConnection, name: &str) -> Result<Vec<VersionRow>, StoreError> {
    policy_versions::table
        .filter(policy_versions::policy.eq(name))
        .order(policy_versions::version.asc())
        .select(VersionRow::as_select())
        .load(conn)
        .map_err(classify)
}

pub fn version(
    conn: &mut AnyConnection,
    name: &str,
    version: i32,
) -> Result<Option<VersionRow>, StoreError> {
    policy_versions::table
        .find((name, version))
        .select(VersionRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

pub fn latest_version_number(conn: &mut AnyConnection, name: &str) -> Result<i32, StoreError> {
    policy_versions::table
        .filter(policy_versions::policy.eq(name))
        .select(diesel::dsl::max(policy_versions::version))
        .first::<Option<i32>>(conn)
        .map(|v| v.unwrap_or(0))
        .map_err(classify)
}

pub fn insert_version(conn: &mut AnyConnection, row: &VersionRow) -> Result<(), StoreError> {
    diesel::insert_into(policy_versions::table)
        .values(row)
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

pub fn set_active(conn: &mut AnyConnection, name: &str, version: i32) -> Result<(), StoreError> {
    diesel::update(policies::table.find(name))
        .set(policies::active_version.eq(Some(version)))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

pub fn insert_activation(conn: &mut AnyConnection, row: &ActivationRow) -> Result<(), StoreError> {
    diesel::insert_into(policy_activations::table)
        .values(row)
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Activations of one policy, newest first.
pub fn activations(conn: &mut AnyConnection, name: &str) -> Result<Vec<ActivationRow>, StoreError> {
    policy_activations::table
        .filter(policy_activations::policy.eq(name))
        .order(policy_activations::audit_sequence.desc())
        .select(ActivationRow::as_select())
        .load(conn)
        .map_err(classify)
}

/// Read by every decision (the active set's cache key), so on the concrete connection.
pub fn generation(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    per_backend!(conn, |c| policy_generation::table
        .find(1)
        .select(policy_generation::generation)
        .get_result(c))
    .map_err(classify)
}

pub fn bump_generation(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    diesel::update(policy_generation::table.find(1))
        .set(policy_generation::generation.eq(policy_generation::generation + 1))
        .returning(policy_generation::generation)
        .get_result(conn)
        .map_err(classify)
}

/// Every policy with its active version, in pipeline order.
pub fn active_set(conn: &mut AnyConnection) -> Result<Vec<(PolicyRow, VersionRow)>, StoreError> {
    policies::table
        .inner_join(
            policy_versions::table.on(policy_versions::policy
                .eq(policies::name)
                .and(policies::active_version.eq(policy_versions::version.nullable()))),
        )
        .order((policies::trigger_name.asc(), policies::position.asc()))
        .select((PolicyRow::as_select(), VersionRow::as_select()))
        .load(conn)
        .map_err(classify)
}

/// The version with this source hash (for replaying a decision on the versions it used).
pub fn version_by_sha(
    conn: &mut AnyConnection,
    sha256: &str,
) -> Result<Option<VersionRow>, StoreError> {
    policy_versions::table
        .filter(policy_versions::sha256.eq(sha256))
        .select(VersionRow::as_select())
        .first(conn)
        .optional()
        .map_err(classify)
}
