//! Opaque keyset cursors for lists ordered newest first: the (time, id) of the last item.

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
