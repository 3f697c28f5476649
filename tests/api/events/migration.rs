//! Migration 000017 on a database of the version before it: every client's open invoices
//! summed by due date from the invoices it already holds, as the event writer keeps them from
//! then on.

use chrono::NaiveDate;
use encours::domain::ledger::{Due, Dues, Invoice, Issued};
use encours::store::{self, invoices, ledgers};

use crate::on_both_backends;
use crate::reserved::add_client;
use crate::support::{Backend, database_before};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn invoice(id: &str, amount: i64, due: u32, paid: i64, credited: i64) -> Invoice {
    Invoice {
        issued: Some(Issued {
            amount_minor: amount,
            issued_on: day(1),
            due_on: day(due),
            decision_id: None,
        }),
        paid_minor: paid,
        credited_minor: credited,
        ..Invoice::new(id)
    }
}

async fn the_migration_sums_the_open_invoices_by_due_date(backend: Backend) {
    let Some((mut conn, _db)) = database_before(backend, "_open_amounts_by_due_date") else {
        return;
    };
    let conn = &mut conn;
    for id in ["A", "B"] {
        add_client(conn, id);
    }
    let a = [
        invoice("i1", 10_000, 10, 2_500, 0),
        invoice("i2", 500, 10, 0, 0),
        invoice("i3", 700, 20, 0, 0),
        // Settled by payment, by credit note (and beyond): not open.
        invoice("i4", 900, 20, 900, 0),
        invoice("i5", 300, 25, 0, 400),
        // A payment before its invoice: nothing issued, nothing open.
        Invoice {
            paid_minor: 50,
            ..Invoice::new("i6")
        },
    ];
    let rows: Vec<(&str, &Invoice)> = a.iter().map(|i| ("A", i)).collect();
    invoices::insert_many(conn, &rows).unwrap();

    store::migrate(conn).unwrap();

    let accounts = ledgers::lock_many(conn, &["A", "B"]).unwrap();
    let expected: Dues = [
        (
            day(10),
            Due {
                open_minor: 8_000,
                invoices: 2,
            },
        ),
        (
            day(20),
            Due {
                open_minor: 700,
                invoices: 1,
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(accounts[0].ledger.open_dues, expected, "A");
    assert_eq!(accounts[1].ledger.open_dues, Dues::default(), "B: none");
    assert_eq!(ledgers::dues(conn, "A").unwrap(), expected);
}

on_both_backends!(the_migration_sums_the_open_invoices_by_due_date);
