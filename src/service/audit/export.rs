//! Exporting the audit log as NDJSON or CSV, a page at a time: memory stays constant whatever
//! the log's size, and the file is the chain up to the head read when the export started.

use serde::Deserialize;
use utoipa::ToSchema;

use super::RecordView;
use crate::service::ServiceError;
use crate::store::AnyConnection;
use crate::store::audit::{self as table, RecordFilter};

/// Records per chunk: a few hundred kilobytes with decision payloads.
const PAGE: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON record per line, shaped like `GET /v1/audit/records/{sequence}`.
    Ndjson,
    /// A header line, then one row per record with the payload as a JSON text column.
    Csv,
}

impl Format {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "ndjson" => Ok(Self::Ndjson),
            "csv" => Ok(Self::Csv),
            other => Err(format!("`{other}` is not ndjson or csv")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
        }
    }
}

const CSV_HEADER: [&str; 9] = [
    "sequence",
    "kind",
    "subject",
    "client_id",
    "actor",
    "recorded_at",
    "prev_hash",
    "hash",
    "payload",
];

/// An export in progress; [`Export::next_chunk`] gives its bytes one page at a time.
#[derive(Debug)]
pub struct Export {
    filter: RecordFilter,
    format: Format,
    /// The head when the export started: later records are not part of it.
    upto: i64,
    after: i64,
    started: bool,
}

impl Export {
    pub fn start(
        conn: &mut AnyConnection,
        filter: RecordFilter,
        format: Format,
    ) -> Result<Self, ServiceError> {
        let (upto, _) = table::head(conn)?;
        Ok(Self {
            filter,
            format,
            upto,
            after: 0,
            started: false,
        })
    }

    /// The next chunk (the CSV header comes with the first), or `None` when all is out.
    pub fn next_chunk(
        &mut self,
        conn: &mut AnyConnection,
    ) -> Result<Option<Vec<u8>>, ServiceError> {
        let page = table::list(
            conn,
            &self.filter,
            Some(self.after),
            Some(self.upto),
            false,
            PAGE,
        )?;
        let header = !self.started && self.format == Format::Csv;
        self.started = true;
        if let Some(last) = page.last() {
            self.after = last.sequence;
        }
        let records = page.into_iter().map(RecordView::from);
        match self.format {
            Format::Ndjson if records.len() > 0 => ndjson(records).map(Some),
            Format::Ndjson => Ok(None),
            Format::Csv => {
                let mut rows = Vec::with_capacity(records.len() + 1);
                if header {
                    rows.push(CSV_HEADER.map(str::to_owned).to_vec());
                }
                rows.extend(records.map(csv_row));
                if rows.is_empty() {
                    Ok(None)
                } else {
                    csv(rows).map(Some)
                }
            }
        }
    }
}

fn csv(rows: Vec<Vec<String>>) -> Result<Vec<u8>, ServiceError> {
    let failed = |e: String| ServiceError::Internal(format!("csv export: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    for row in rows {
        out.write_record(&row).map_err(|e| failed(e.to_string()))?;
    }
    out.into_inner().map_err(|e| failed(e.to_string()))
}

fn ndjson(records: impl Iterator<Item = RecordView>) -> Result<Vec<u8>, ServiceError> {
    let mut out = Vec::new();
    for record in records {
        serde_json::to_writer(&mut out, &record)
            .map_err(|e| ServiceError::Internal(format!("ndjson export: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

fn csv_row(r: RecordView) -> Vec<String> {
    vec![
        r.sequence.to_string(),
        r.kind,
        r.subject,
        r.client_id.unwrap_or_default(),
        r.actor,
        crate::audit::rfc3339(r.recorded_at),
        r.prev_hash,
        r.hash,
        r.payload.get().to_owned(),
    ]
}
