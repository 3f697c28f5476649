//! Sales alerts, kept apart so that "recent" can be counted as of any read.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::moment::Moment;
use super::schema::sales_alerts;
use super::{AnyConnection, StoreError, classify};

#[derive(Insertable)]
#[diesel(table_name = sales_alerts, treat_none_as_default_value = false)]
pub struct AlertRow {
    pub event_seq: i64,
    pub client_id: String,
    pub negative: bool,
    pub occurred_at: Moment,
}

impl AlertRow {
    pub fn new(event_seq: i64, client_id: &str, negative: bool, at: DateTime<Utc>) -> Self {
        Self {
            event_seq,
            client_id: client_id.to_owned(),
            negative,
            occurred_at: Moment(at.naive_utc()),
        }
    }
}

pub fn insert_many(conn: &mut AnyConnection, rows: &[AlertRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(5_000) {
        per_backend!(conn, |c| diesel::insert_into(sales_alerts::table)
            .values(chunk)
            .execute(c))
        .map_err(classify)?;
    }
    Ok(())
}

pub fn delete_for_client(conn: &mut AnyConnection, client_id: &str) -> Result<(), StoreError> {
    diesel::delete(sales_alerts::table.filter(sales_alerts::client_id.eq(client_id)))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// (event seq, negative?) of every alert of a client, in seq order (for rebuild checks).
pub fn for_client(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Vec<(i64, bool)>, StoreError> {
    sales_alerts::table
        .filter(sales_alerts::client_id.eq(client_id))
        .order(sales_alerts::event_seq.asc())
        .select((sales_alerts::event_seq, sales_alerts::negative))
        .load(conn)
        .map_err(classify)
}
