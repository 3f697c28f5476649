//! A client's reserved credit: on SQLite a running total kept by triggers (migration 000012)
//! less what has lapsed unswept; it must answer what summing the reservations answers, after
//! any sequence of writes, and from a database made before the migration.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use encours::domain::{ClientId, ClientProfile, ClientStatus, Country, Currency, Money};
use encours::store::reservations::{self, ReservationRow, Settlement};
use encours::store::{AnyConnection, clients};
use proptest::prelude::*;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, check_on_store, database_before};

const CLIENTS: u8 = 3;
const STATUSES: [&str; 4] = ["active", "invoiced", "released", "expired"];

#[derive(Clone, Debug)]
enum Op {
    /// A new active reservation, expiring `ttl_ms` from now (0: already lapsed).
    Reserve {
        client: u8,
        minor: i64,
        ttl_ms: i64,
    },
    /// Invoice or release the k-th reservation made (refused once settled or lapsed).
    Settle {
        k: usize,
        invoiced: bool,
    },
    /// The scheduled expiry sweep.
    Sweep,
    Advance {
        ms: i64,
    },
    /// No code path does these; the triggers must hold anyway.
    Delete {
        k: usize,
    },
    Edit {
        k: usize,
        client: Option<u8>,
        minor: Option<i64>,
        status: Option<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let k = any::<usize>();
    let minor = 1i64..1_000_000;
    prop_oneof![
        6 => (0..CLIENTS, minor.clone(), prop_oneof![1 => Just(0i64), 9 => 0i64..30_000])
            .prop_map(|(client, minor, ttl_ms)| Op::Reserve { client, minor, ttl_ms }),
        3 => (k, any::<bool>()).prop_map(|(k, invoiced)| Op::Settle { k, invoiced }),
        2 => Just(Op::Sweep),
        3 => prop_oneof![1 => Just(0i64), 3 => 1i64..5_000, 1 => Just(1_000)]
            .prop_map(|ms| Op::Advance { ms }),
        1 => k.prop_map(|k| Op::Delete { k }),
        2 => (
            k,
            proptest::option::of(0..CLIENTS),
            proptest::option::of(minor),
            proptest::option::of(0u8..4),
        )
            .prop_map(|(k, client, minor, status)| Op::Edit { k, client, minor, status }),
    ]
}

fn profile() -> ClientProfile {
    let eur = Currency::parse("EUR").unwrap();
    ClientProfile {
        name: "Reserve SA".into(),
        registration_number: None,
        country: Country::parse("FR").unwrap(),
        sector: None,
        currency: eur,
        credit_limit: Money::from_minor(1_000_000_000, eur),
        status: None,
    }
}

pub(crate) fn add_client(conn: &mut AnyConnection, id: &str) {
    let id = ClientId::parse(id).unwrap();
    clients::insert(
        conn,
        &id,
        &profile(),
        ClientStatus::Active,
        false,
        Utc::now(),
    )
    .unwrap();
}

fn reserve(
    conn: &mut AnyConnection,
    id: &str,
    client: &str,
    minor: i64,
    expires_at: NaiveDateTime,
) {
    let row = ReservationRow {
        decision_id: id.into(),
        client_id: client.into(),
        amount_minor: minor,
        status: "active".into(),
        created_at: base(),
        expires_at,
        settled_at: None,
        settled_by: None,
    };
    reservations::insert(conn, &row).unwrap();
}

fn base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 5)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .unwrap()
}

#[derive(QueryableByName)]
struct Summed {
    #[diesel(sql_type = Nullable<BigInt>)]
    minor: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    first: Option<NaiveDateTime>,
}

/// The oracle: the summing query `reserved_minor` ran before the running total.
fn summed(
    conn: &mut AnyConnection,
    client: &str,
    now: NaiveDateTime,
) -> (i64, Option<NaiveDateTime>) {
    let row: Summed = diesel::sql_query(
        "SELECT CAST(SUM(amount_minor) AS BIGINT) AS minor, MIN(expires_at) AS first \
         FROM reservations WHERE client_id = $1 AND status = 'active' AND expires_at > $2",
    )
    .bind::<Text, _>(client)
    .bind::<Timestamp, _>(now)
    .get_result(conn)
    .unwrap();
    (row.minor.unwrap_or(0), row.first)
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = Text)]
    client_id: String,
    #[diesel(sql_type = BigInt)]
    minor: i64,
}

fn totals(conn: &mut AnyConnection, sql: &str) -> BTreeMap<String, i64> {
    let rows: Vec<Total> = diesel::sql_query(sql).load(conn).unwrap();
    rows.into_iter()
        .filter(|t| t.minor != 0)
        .map(|t| (t.client_id, t.minor))
        .collect()
}

/// SQLite: every client's running total equals the sum of its active reservations, lapsed or
/// not (clients without a row count as 0).
fn running_totals_hold(conn: &mut AnyConnection) -> Result<(), TestCaseError> {
    let kept = totals(
        conn,
        "SELECT client_id, active_minor AS minor FROM client_reserved",
    );
    let summed = totals(
        conn,
        "SELECT client_id, SUM(amount_minor) AS minor FROM reservations \
         WHERE status = 'active' GROUP BY client_id",
    );
    prop_assert_eq!(kept, summed);
    Ok(())
}

#[derive(QueryableByName, PartialEq, Debug)]
struct Held {
    #[diesel(sql_type = Text)]
    decision_id: String,
    #[diesel(sql_type = BigInt)]
    amount_minor: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamp)]
    expires_at: NaiveDateTime,
}

/// Each client's reservations that a decision may count, now or later: not those settled at
/// or after their expiry, which no change of status can bring back (the version triggers leave
/// such an update alone, as they leave the sweep's).
fn held(conn: &mut AnyConnection, ids: &[String]) -> Vec<Vec<Held>> {
    ids.iter()
        .map(|id| {
            diesel::sql_query(
                "SELECT decision_id, amount_minor, status, expires_at FROM reservations \
                 WHERE client_id = $1 \
                 AND NOT (settled_at IS NOT NULL AND settled_at >= expires_at) \
                 ORDER BY decision_id",
            )
            .bind::<Text, _>(id)
            .load(conn)
            .unwrap()
        })
        .collect()
}

fn versions(conn: &mut AnyConnection, ids: &[String]) -> Vec<Option<i64>> {
    ids.iter()
        .map(|id| clients::lock_version(conn, &ClientId::parse(id).unwrap()).unwrap())
        .collect()
}

/// Random reservations, settlements, sweeps, deletions and edits over three clients, in
/// virtual time: after each step `reserved_minor` answers what summing answers, now and a
/// little later, the running totals are exact (SQLite), a client whose reservations changed
/// has a greater version (on SQLite their changes are counted apart from the client's row,
/// migration 000014), and a sweep bumps no client's version.
async fn reserved_equals_summed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ops = || prop::collection::vec(op(), 1..60);
    check_on_store(&app, 32, ops, move |_, conn, case, ops| {
        let ids: Vec<String> = (0..CLIENTS).map(|n| format!("R-{case}-{n}")).collect();
        for id in &ids {
            add_client(conn, id);
        }
        let mut now = base();
        let mut made: Vec<String> = Vec::new();
        let pick =
            |made: &[String], k: usize| (!made.is_empty()).then(|| made[k % made.len()].clone());
        for op in &ops {
            let before = (held(conn, &ids), versions(conn, &ids));
            match op {
                Op::Reserve {
                    client,
                    minor,
                    ttl_ms,
                } => {
                    let id = format!("{case}-{}", made.len());
                    let expires_at = now + TimeDelta::milliseconds(*ttl_ms);
                    reserve(conn, &id, &ids[usize::from(*client)], *minor, expires_at);
                    made.push(id);
                }
                Op::Settle { k, invoiced } => {
                    if let Some(id) = pick(&made, *k) {
                        let how = if *invoiced {
                            Settlement::Invoiced
                        } else {
                            Settlement::Released
                        };
                        reservations::settle(conn, &id, how, "prop", now).unwrap();
                    }
                }
                Op::Sweep => {
                    let before = versions(conn, &ids);
                    reservations::expire_due(conn, now).unwrap();
                    prop_assert_eq!(versions(conn, &ids), before, "the sweep bumped a version");
                }
                Op::Advance { ms } => now += TimeDelta::milliseconds(*ms),
                Op::Delete { k } => {
                    if let Some(id) = pick(&made, *k) {
                        diesel::sql_query(format!(
                            "DELETE FROM reservations WHERE decision_id = '{id}'"
                        ))
                        .execute(conn)
                        .unwrap();
                    }
                }
                Op::Edit {
                    k,
                    client,
                    minor,
                    status,
                } => {
                    let mut set = Vec::new();
                    if let Some(c) = client {
                        set.push(format!("client_id = '{}'", ids[usize::from(*c)]));
                    }
                    if let Some(m) = minor {
                        set.push(format!("amount_minor = {m}"));
                    }
                    if let Some(s) = status {
                        set.push(format!("status = '{}'", STATUSES[usize::from(*s)]));
                    }
                    if let (Some(id), false) = (pick(&made, *k), set.is_empty()) {
                        diesel::sql_query(format!(
                            "UPDATE reservations SET {} WHERE decision_id = '{id}'",
                            set.join(", ")
                        ))
                        .execute(conn)
                        .unwrap();
                    }
                }
            }
            if !matches!(op, Op::Sweep) {
                let after = (held(conn, &ids), versions(conn, &ids));
                for (i, id) in ids.iter().enumerate() {
                    if after.0[i] != before.0[i] {
                        prop_assert!(
                            after.1[i] > before.1[i],
                            "{}: reservations changed by {:?}, version {:?} then {:?}",
                            id,
                            op,
                            before.1[i],
                            after.1[i]
                        );
                    }
                }
            }
            for id in &ids {
                for at in [now, now + TimeDelta::milliseconds(2_500)] {
                    let read = reservations::reserved_minor(conn, id, at)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(
                        read,
                        summed(conn, id, at),
                        "{} at {} after {:?}",
                        id,
                        at,
                        op
                    );
                }
            }
            if backend == Backend::Sqlite {
                running_totals_hold(conn)?;
            }
        }
        Ok(())
    })
    .await;
}

on_both_backends!(reserved_equals_summed);

/// A database with reservations made before migration 000012 gets every client's total from
/// them (0 for a client without active ones), and the triggers carry on from there, for those
/// clients and for one made after.
#[test]
fn the_migration_sums_the_reservations_made_before_it() {
    let (mut conn, _db) = database_before(Backend::Sqlite, "_reserved_running_total").unwrap();
    let conn = &mut conn;
    let now = base();
    let later = now + TimeDelta::hours(1);
    for id in ["A", "B", "C", "D"] {
        add_client(conn, id);
    }
    // A: one active, one invoiced, one released, one swept, then one lapsed but not swept.
    for (id, minor) in [("a1", 100), ("a3", 3_000), ("a4", 40_000)] {
        reserve(conn, id, "A", minor, later);
    }
    reserve(conn, "a5", "A", 500_000, now - TimeDelta::seconds(1));
    reservations::settle(conn, "a3", Settlement::Invoiced, "t", now).unwrap();
    reservations::settle(conn, "a4", Settlement::Released, "t", now).unwrap();
    reservations::expire_due(conn, now).unwrap();
    reserve(conn, "a2", "A", 20, now);
    // B: only a settled one; C: none; D: one active.
    reserve(conn, "b1", "B", 7, later);
    reservations::settle(conn, "b1", Settlement::Invoiced, "t", now).unwrap();
    reserve(conn, "d1", "D", 9_000, later);

    encours::store::migrate(conn).unwrap();
    let kept: Vec<Total> = diesel::sql_query(
        "SELECT client_id, active_minor AS minor FROM client_reserved ORDER BY client_id",
    )
    .load(conn)
    .unwrap();
    let kept: Vec<(String, i64)> = kept.into_iter().map(|t| (t.client_id, t.minor)).collect();
    let expected = [("A", 120), ("B", 0), ("C", 0), ("D", 9_000)].map(|(c, m)| (c.to_owned(), m));
    assert_eq!(kept, expected);
    for client in ["A", "B", "C", "D"] {
        assert_eq!(
            reservations::reserved_minor(conn, client, now).unwrap(),
            summed(conn, client, now),
            "{client}"
        );
    }
    assert_eq!(
        reservations::reserved_minor(conn, "A", now).unwrap(),
        (100, Some(later))
    );

    // The triggers from here on: an old client's reservation, a new client's first.
    reserve(conn, "c1", "C", 60, later);
    add_client(conn, "E");
    assert_eq!(
        reservations::reserved_minor(conn, "E", now).unwrap(),
        (0, None)
    );
    reserve(conn, "e1", "E", 80, later);
    reservations::expire_due(conn, now).unwrap();
    for (client, minor) in [("A", 100), ("C", 60), ("E", 80)] {
        assert_eq!(
            reservations::reserved_minor(conn, client, now).unwrap(),
            (minor, Some(later)),
            "{client}"
        );
    }
    running_totals_hold(conn).unwrap();
}
