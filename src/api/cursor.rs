//! Opaque keyset cursors: the (time, id) of the last item of a list ordered newest first, or
//! the sequence number of the last audit record.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Cursor {
    t: DateTime<Utc>,
    id: String,
}

pub fn encode(at: DateTime<Utc>, id: &str) -> String {
    let json = serde_json::to_vec(&Cursor {
        t: at,
        id: id.to_owned(),
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode(raw: &str) -> Result<(DateTime<Utc>, String), String> {
    let refuse = || "is not a cursor returned by this API".to_string();
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| refuse())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| refuse())?;
    Ok((c.t, c.id))
}

/// The `limit` query parameter: 1..500, default 50.
pub fn limit(raw: Option<i64>, problems: &mut super::json::Problems) -> i64 {
    let limit = raw.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        problems.push("limit", "must be 1 to 500");
    }
    limit
}

/// Cuts the `limit + 1` rows a store query returned to a page, with the cursor of the next
/// page when there is one.
pub fn page<T>(
    mut items: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (DateTime<Utc>, &str),
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(|last| {
        let (at, id) = key(last);
        encode(at, id)
    });
    (items, next)
}

#[derive(Serialize, Deserialize)]
struct SequenceCursor {
    s: i64,
}

/// A cursor for lists keyed by a sequence number (the audit log).
pub fn encode_sequence(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&SequenceCursor { s: sequence }).unwrap_or_default())
}

pub fn decode_sequence(raw: &str) -> Result<i64, String> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<SequenceCursor>(&bytes).ok())
        .map(|c| c.s)
        .ok_or_else(|| "is not a cursor returned by this API".to_string())
}
