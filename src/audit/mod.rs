//! The audit log: canonical JSON, the SHA-256 hash chain and the writer.
//!
//! Each record's hash covers its canonical form including the previous record's hash, so
//! changing, removing or reordering any record breaks every hash after it. Records are
//! appended inside the caller's transaction: the act and its proof commit or fail together.

mod canonical;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use canonical::canonical_json;

use crate::store::audit::{self as table, AuditRow};
use crate::store::{AnyConnection, StoreError};

/// The hash the first record points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, to what, by whom, with everything needed to prove it later.
#[derive(Debug)]
pub struct Entry {
    pub kind: &'static str,
    pub subject: String,
    pub client_id: Option<String>,
    pub actor: String,
    pub payload: Value,
}

/// Where a record sits in the chain: what callers hand back to their clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRef {
    pub sequence: i64,
    pub hash: String,
}

/// Appends `entry` to the chain, in the caller's (write) transaction.
pub fn append(conn: &mut AnyConnection, entry: Entry) -> Result<AuditRef, StoreError> {
    let (sequence, prev_hash) = table::advance_head(conn)?;
    let recorded_at = Utc::now().trunc_subsecs(6);
    let payload = canonical_json(&entry.payload);
    let mut row = AuditRow {
        sequence,
        kind: entry.kind.to_owned(),
        subject: entry.subject,
        client_id: entry.client_id,
        actor: entry.actor,
        recorded_at: recorded_at.naive_utc(),
        payload,
        prev_hash,
        hash: String::new(),
    };
    row.hash = record_hash(&row, &entry.payload);
    table::insert(conn, &row)?;
    Ok(AuditRef {
        sequence,
        hash: row.hash,
    })
}

/// The hash of a record: SHA-256 over the canonical JSON of every field but the hash itself.
pub fn record_hash(row: &AuditRow, payload: &Value) -> String {
    let body = json!({
        "sequence": row.sequence,
        "kind": row.kind,
        "subject": row.subject,
        "client_id": row.client_id,
        "actor": row.actor,
        "recorded_at": rfc3339(row.recorded_at.and_utc()),
        "payload": payload,
        "prev_hash": row.prev_hash,
    });
    hex::encode(Sha256::digest(canonical_json(&body).as_bytes()))
}

/// RFC 3339 in UTC with microseconds: the one textual form of a time in hashed content.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Outcome of walking the chain.
#[derive(Debug, PartialEq, Eq)]
pub struct Verification {
    pub records: i64,
    pub head: Option<AuditRef>,
    /// The first record whose content, position or link does not check out.
    pub first_broken: Option<i64>,
}

/// Recomputes the chain page by page, in constant memory.
pub fn verify(conn: &mut AnyConnection) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1_000;
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    let mut records = 0;
    let mut head = None;
    let mut first_broken = None;
    let mut after = 0;
    loop {
        let page = table::page_after(conn, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for row in page {
            records += 1;
            if first_broken.is_none() && !row_checks_out(&row, expected_seq, &expected_prev) {
                first_broken = Some(row.sequence.min(expected_seq));
            }
            expected_seq = row.sequence + 1;
            expected_prev = row.hash.clone();
            head = Some(AuditRef {
                sequence: row.sequence,
                hash: row.hash,
            });
        }
    }
    Ok(Verification {
        records,
        head,
        first_broken,
    })
}

fn row_checks_out(row: &AuditRow, expected_seq: i64, expected_prev: &str) -> bool {
    let Ok(payload) = serde_json::from_str::<Value>(&row.payload) else {
        return false;
    };
    row.sequence == expected_seq
        && row.prev_hash == expected_prev
        && canonical_json(&payload) == row.payload
        && record_hash(row, &payload) == row.hash
}
