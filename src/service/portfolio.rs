//! The portfolio as of now: per account currency (amounts in different currencies are never
//! added up), per risk band, the clients, their exposure, its insured part and what is
//! overdue; totals; DSO; the largest exposures; and the decisions of the last 30 days.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::ServiceError;
use crate::domain::{Client, RiskBand, format_minor};
use crate::store::{AnyConnection, Store, clients, invoices, read_snapshot};

/// Days of credit sales DSO is measured over.
pub const DSO_PERIOD_DAYS: i64 = 90;
pub const DSO_FORMULA: &str = "dso = receivables / credit_sales * period_days, where receivables \
    = open amount of issued invoices now and credit_sales = amount of the invoices issued in the \
    last period_days days (issued_on after today - period_days); null without credit sales";
const LARGEST: usize = 10;
const PAGE: i64 = 1_000;

#[derive(Serialize, ToSchema)]
pub struct Portfolio {
    pub as_of: DateTime<Utc>,
    /// One book per account currency, in code order.
    pub currencies: Vec<Book>,
    pub decisions_last_30_days: DecisionsSummary,
}

/// The clients of one account currency.
#[derive(Serialize, ToSchema)]
pub struct Book {
    pub currency: String,
    /// A to E, then the clients not scored yet (`band` null); empty bands are listed too.
    pub bands: Vec<BandFigures>,
    pub totals: Figures,
    pub dso: Dso,
    /// The 10 largest exposures, largest first.
    pub largest_exposures: Vec<LargeExposure>,
}

#[derive(Serialize, ToSchema)]
pub struct BandFigures {
    pub band: Option<RiskBand>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Default, Serialize, ToSchema)]
pub struct Figures {
    pub clients: i64,
    /// Open invoices + active reservations.
    pub exposure: String,
    /// Σ min(exposure, insured amount) over clients with cover valid today.
    pub insured_exposure: String,
    /// Open amount of invoices past their due date, as of now.
    pub overdue: String,
}

#[derive(Serialize, ToSchema)]
pub struct Dso {
    /// Days, one decimal; null without credit sales in the period.
    #[schema(value_type = Option<String>)]
    pub days: Option<Decimal>,
    pub receivables: String,
    pub credit_sales: String,
    pub period_days: i64,
    pub formula: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct LargeExposure {
    pub client_id: String,
    pub name: String,
    pub band: Option<RiskBand>,
    pub exposure: String,
    pub credit_limit: String,
    pub overdue: String,
}

/// Credit decisions since `since`, counted by outcome and channel.
#[derive(Serialize, ToSchema)]
pub struct DecisionsSummary {
    pub since: DateTime<Utc>,
    pub counts: Vec<DecisionCount>,
}

#[derive(Serialize, ToSchema)]
pub struct DecisionCount {
    pub outcome: String,
    pub channel: String,
    pub count: i64,
}

/// Decisions made since `since` (resolutions included, under channel `manual`), by
/// (outcome, channel).
pub fn decisions_last_30_days(
    conn: &mut AnyConnection,
    since: DateTime<Utc>,
) -> Result<Vec<DecisionCount>, ServiceError> {
    Ok(
        crate::store::decisions::counts_since(conn, since.naive_utc())?
            .into_iter()
            .map(|(outcome, channel, count)| DecisionCount {
                outcome,
                channel,
                count,
            })
            .collect(),
    )
}

pub async fn portfolio(store: &Store, currency: Option<String>) -> Result<Portfolio, ServiceError> {
    store
        .run(move |conn| {
            read_snapshot(conn, |conn| {
                build(conn, currency.as_deref(), Utc::now().trunc_subsecs(6))
            })
        })
        .await
}

/// Running sums of one currency, in minor units.
#[derive(Default)]
struct Acc {
    digits: u32,
    bands: BTreeMap<Option<char>, Sums>,
    receivables: i128,
    credit_sales: i128,
    largest: Vec<(i64, LargeExposure)>,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    clients: i64,
    exposure: i128,
    insured: i128,
    overdue: i128,
}

pub fn build(
    conn: &mut AnyConnection,
    currency: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Portfolio, ServiceError> {
    let today = now.date_naive();
    let since = today - TimeDelta::days(DSO_PERIOD_DAYS - 1);
    let mut books: BTreeMap<String, Acc> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = clients::page_by_id(conn, after.as_deref(), PAGE, now)?;
        let Some(last) = page.last() else { break };
        after = Some(last.client_id.to_string());
        let ids: Vec<&str> = page.iter().map(|c| c.client_id.as_str()).collect();
        let sales = invoices::issued_since_by_client(conn, &ids, since)?;
        for c in page
            .iter()
            .filter(|c| currency.is_none_or(|code| c.currency.code() == code))
        {
            let acc = books.entry(c.currency.code().to_owned()).or_default();
            acc.digits = c.currency.minor_digits();
            add(
                acc,
                c,
                today,
                sales.get(c.client_id.as_str()).copied().unwrap_or(0),
            );
        }
    }
    let since = now - TimeDelta::days(30);
    Ok(Portfolio {
        as_of: now,
        currencies: books
            .into_iter()
            .map(|(code, acc)| book(code, acc))
            .collect(),
        decisions_last_30_days: DecisionsSummary {
            since,
            counts: decisions_last_30_days(conn, since)?,
        },
    })
}

fn add(acc: &mut Acc, c: &Client, today: chrono::NaiveDate, sales: i64) {
    let exposure = c.exposure_minor().max(0);
    let insured = c
        .state
        .insurance
        .as_ref()
        .filter(|i| i.valid_until.is_none_or(|d| d >= today))
        .map_or(0, |i| i.insured_amount.minor().min(exposure));
    let band = c
        .state
        .risk
        .as_ref()
        .map(|r| r.band.as_str().chars().next().unwrap_or('?'));
    let sums = acc.bands.entry(band).or_default();
    sums.clients += 1;
    sums.exposure += i128::from(exposure);
    sums.insured += i128::from(insured);
    sums.overdue += i128::from(c.state.overdue.minor());
    acc.receivables += i128::from(c.state.open_invoices.minor());
    acc.credit_sales += i128::from(sales);
    acc.largest.push((
        exposure,
        LargeExposure {
            client_id: c.client_id.to_string(),
            name: c.name.clone(),
            band: c.state.risk.as_ref().map(|r| r.band),
            exposure: format_minor(exposure, c.currency),
            credit_limit: c.credit_limit.to_string(),
            overdue: c.state.overdue.to_string(),
        },
    ));
    if acc.largest.len() > 4 * LARGEST {
        keep_largest(&mut acc.largest);
    }
}

fn keep_largest(list: &mut Vec<(i64, LargeExposure)>) {
    list.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.client_id.cmp(&b.1.client_id))
    });
    list.truncate(LARGEST);
}

fn book(currency: String, mut acc: Acc) -> Book {
    let digits = acc.digits;
    let money = |minor: i128| Decimal::from_i128_with_scale(minor, digits).to_string();
    let figures = |s: Sums| Figures {
        clients: s.clients,
        exposure: money(s.exposure),
        insured_exposure: money(s.insured),
        overdue: money(s.overdue),
    };
    let mut total = Sums::default();
    let mut bands = Vec::new();
    for band in ['A', 'B', 'C', 'D', 'E']
        .map(Some)
        .into_iter()
        .chain([None])
    {
        let s = acc.bands.get(&band).copied().unwrap_or_default();
        total.clients += s.clients;
        total.exposure += s.exposure;
        total.insured += s.insured;
        total.overdue += s.overdue;
        bands.push(BandFigures {
            band: band.and_then(|b| RiskBand::parse(&b.to_string()).ok()),
            figures: figures(s),
        });
    }
    keep_largest(&mut acc.largest);
    let days = (acc.credit_sales > 0).then(|| {
        (Decimal::from_i128_with_scale(acc.receivables, 0) * Decimal::from(DSO_PERIOD_DAYS)
            / Decimal::from_i128_with_scale(acc.credit_sales, 0))
        .round_dp(1)
    });
    let largest: Vec<LargeExposure> = acc.largest.into_iter().map(|(_, l)| l).collect();
    Book {
        currency,
        bands,
        totals: figures(total),
        dso: Dso {
            days,
            receivables: money(acc.receivables),
            credit_sales: money(acc.credit_sales),
            period_days: DSO_PERIOD_DAYS,
            formula: DSO_FORMULA,
        },
        largest_exposures: largest,
    }
}
