//! The audit log: canonical JSON, the SHA-256 hash chain and the writer.
//!
//! Each record's hash covers its canonical form including the previous record's hash, so
//! changing, removing or reordering any record breaks every hash after it. Records are
//! appended inside the caller's transaction: the act and its proof commit or fail together.

mod canonical;
mod stream;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use canonical::canonical_json;
pub use stream::{Verbatim, to_canonical_json};

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

impl Entry {
    /// What happened to a policy (a version written, activated, shadowed): no client, the
    /// policy as its subject.
    pub fn on_policy(kind: &'static str, policy: &str, actor: &str, payload: Value) -> Self {
        Self {
            kind,
            subject: format!("policy:{policy}"),
            client_id: None,
            actor: actor.to_owned(),
            payload,
        }
    }
}

/// Where a record sits in the chain: what callers hand back to their clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRef {
    pub sequence: i64,
    pub hash: String,
}

/// Appends `entry` to the chain, in the caller's (write) transaction.
pub fn append(conn: &mut AnyConnection, entry: Entry) -> Result<AuditRef, StoreError> {
    let payload = canonical_json(&entry.payload);
    append_canonical(
        conn,
        Header {
            kind: entry.kind,
            subject: entry.subject,
            client_id: entry.client_id,
            actor: entry.actor,
        },
        payload,
    )
}

/// An entry's fields but its payload.
#[derive(Clone, Debug)]
pub struct Header {
    pub kind: &'static str,
    pub subject: String,
    pub client_id: Option<String>,
    pub actor: String,
}

/// [`append`] for a payload already in canonical JSON ([`canonical_json`]).
pub fn append_canonical(
    conn: &mut AnyConnection,
    header: Header,
    payload: String,
) -> Result<AuditRef, StoreError> {
    let mut chain = Chain::lock(conn)?;
    let appended = chain.append(conn, header, payload)?;
    chain.finish(conn)?;
    Ok(appended)
}

/// The chain's head, held by one writer for a whole transaction: records are appended without
/// touching the head row until [`Chain::finish`], so a batch of decisions writes it once.
/// A caller that undoes an append (a rolled-back savepoint) restores its copy from before.
#[derive(Clone, Debug)]
pub struct Chain {
    sequence: i64,
    hash: String,
}

impl Chain {
    /// Locks the head until the transaction ends.
    pub fn lock(conn: &mut AnyConnection) -> Result<Self, StoreError> {
        let (sequence, hash) = table::lock_head(conn)?;
        Ok(Self { sequence, hash })
    }

    /// Writes the next record; its payload must be canonical JSON.
    pub fn append(
        &mut self,
        conn: &mut AnyConnection,
        header: Header,
        payload: String,
    ) -> Result<AuditRef, StoreError> {
        self.append_keeping(conn, header, payload)
            .map(|(appended, _)| appended)
    }

    /// [`Chain::append`] that hands the payload back once written, for a caller that still
    /// needs it (the decision writer passes it on to shadow runs) without copying it first.
    pub fn append_keeping(
        &mut self,
        conn: &mut AnyConnection,
        header: Header,
        payload: String,
    ) -> Result<(AuditRef, String), StoreError> {
        let mut row = AuditRow {
            sequence: self.sequence + 1,
            kind: header.kind.to_owned(),
            subject: header.subject,
            client_id: header.client_id,
            actor: header.actor,
            recorded_at: Utc::now().trunc_subsecs(6).naive_utc(),
            payload,
            prev_hash: self.hash.clone(),
            hash: String::new(),
        };
        row.hash = record_hash(&row);
        table::insert(conn, &row)?;
        self.sequence = row.sequence;
        self.hash.clone_from(&row.hash);
        Ok((
            AuditRef {
                sequence: row.sequence,
                hash: row.hash,
            },
            row.payload,
        ))
    }

    /// Moves the stored head to the last record appended.
    pub fn finish(self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        table::set_head(conn, self.sequence, &self.hash)
    }
}

/// The hash of a record: SHA-256 over the canonical JSON of every field but the hash itself,
/// `{"actor","client_id","kind","payload","prev_hash","recorded_at","sequence","subject"}`
/// in that (sorted) order, with the payload as stored (canonical). Fed to the hasher piece by
/// piece rather than built as one more copy of the payload.
pub fn record_hash(row: &AuditRow) -> String {
    let text = |s: &str| Value::String(s.to_owned()).to_string();
    let mut h = Sha256::new();
    h.update(b"{\"actor\":");
    h.update(text(&row.actor));
    h.update(b",\"client_id\":");
    h.update(
        row.client_id
            .as_deref()
            .map_or_else(|| "null".to_owned(), text),
    );
    h.update(b",\"kind\":");
    h.update(text(&row.kind));
    h.update(b",\"payload\":");
    h.update(&row.payload);
    h.update(b",\"prev_hash\":");
    h.update(text(&row.prev_hash));
    h.update(b",\"recorded_at\":");
    h.update(text(&rfc3339(row.recorded_at.and_utc())));
    h.update(b",\"sequence\":");
    h.update(row.sequence.to_string());
    h.update(b",\"subject\":");
    h.update(text(&row.subject));
    h.update(b"}");
    hex::encode(h.finalize())
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

/// Recomputes the chain page by page, in constant memory, up to the head the writers had
/// recorded when it started (records appended meanwhile are left to the next run), and checks
/// that the chain really ends there: a record removed from the end is found too.
pub fn verify(conn: &mut AnyConnection) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1_000;
    let (head_sequence, head_hash) = table::head(conn)?;
    let all = table::RecordFilter::default();
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    let mut records = 0;
    let mut head = None;
    let mut first_broken = None;
    let mut after = 0;
    loop {
        let page = table::list(conn, &all, Some(after), Some(head_sequence), false, PAGE)?;
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
    if first_broken.is_none() {
        let last = head.as_ref().map_or(0, |h| h.sequence);
        if last < head_sequence {
            first_broken = Some(last + 1);
        } else if expected_prev != head_hash {
            first_broken = Some(last.max(1));
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
        && record_hash(row) == row.hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hash as the chain defines it: the canonical JSON of the whole record but its hash.
    fn by_definition(row: &AuditRow) -> String {
        let payload: Value = serde_json::from_str(&row.payload).unwrap();
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

    #[test]
    fn streamed_hash_is_the_hash_of_the_canonical_record() {
        let payload = json!({"z": [1, {"b": "é\"\n", "a": null}], "amount": "12.50"});
        for client_id in [None, Some("CL-\"1\"".to_owned())] {
            let row = AuditRow {
                sequence: 42,
                kind: "decision".into(),
                subject: "decision:é/1".into(),
                client_id,
                actor: "user \\ x".into(),
                recorded_at: Utc::now().trunc_subsecs(6).naive_utc(),
                payload: canonical_json(&payload),
                prev_hash: GENESIS_HASH.into(),
                hash: String::new(),
            };
            assert_eq!(record_hash(&row), by_definition(&row));
        }
    }
}
