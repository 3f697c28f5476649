//! Impact on the open book: what a version of a `client_event` stage would do to every current
//! client's limit, status and band if a review ran today, against what the active policies do
//! on the same review, and how much exposure would then sit above the limits. Nothing is
//! written: the pipeline runs on clients as stored, like a scheduled review would.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ServiceError;
use super::policies::PolicyRegistry;
use super::policies::registry::runs_in;
use super::reviews::{self, Cause, Standing};
use crate::domain::{Client, ClientStatus, Currency, RiskBand, format_minor};
use crate::policy::{Stage, Trigger};
use crate::store::{AnyConnection, Store, clients};

const PAGE: i64 = 200;

/// Which clients to evaluate; all of them by default.
#[derive(Debug, Default)]
pub struct Filter {
    pub currency: Option<Currency>,
    /// The band the client has now.
    pub band: Option<RiskBand>,
}

/// One client whose limit, status or band the version would change. `current` is what the
/// active policies give on the same review: the stored value, unless time alone moved it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientImpact {
    pub client_id: String,
    pub currency: String,
    /// Open invoices plus reservations.
    #[schema(example = "42000.00")]
    pub exposure: String,
    pub current_limit: String,
    pub new_limit: String,
    pub current_status: ClientStatus,
    pub new_status: ClientStatus,
    pub current_band: Option<RiskBand>,
    pub new_band: Option<RiskBand>,
    /// The version would send the client to a credit manager.
    pub referred: bool,
}

/// Exposure above the limits in one currency, with the active policies and with the version.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Overrun {
    pub clients_over_current: u64,
    /// Sum over clients of max(0, exposure − current limit).
    #[schema(example = "0.00")]
    pub exposure_above_current: String,
    pub clients_over_new: u64,
    /// Sum over clients of max(0, exposure − new limit).
    #[schema(example = "12000.00")]
    pub exposure_above_new: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Impact {
    pub policy: String,
    pub version: i32,
    /// Clients evaluated.
    pub evaluated: u64,
    /// The clients whose limit, status or band would change, by client id.
    pub changes: Vec<ClientImpact>,
    /// Per currency.
    pub exposure: BTreeMap<String, Overrun>,
}

/// Running sums in minor units, per currency.
#[derive(Default)]
struct Sums {
    over_current: u64,
    above_current: i64,
    over_new: u64,
    above_new: i64,
}

/// Runs the `client_event` pipeline with version `number` of `name` in place of the active one
/// over every client matching `filter`.
pub async fn impact(
    store: &Store,
    registry: Arc<PolicyRegistry>,
    name: String,
    number: i32,
    filter: Filter,
) -> Result<Impact, ServiceError> {
    store
        .run(move |conn| {
            let (champion, challenger) = pipelines(conn, &registry, &name, number)?;
            let now = Utc::now();
            let mut report = Impact {
                policy: name,
                version: number,
                evaluated: 0,
                changes: Vec::new(),
                exposure: BTreeMap::new(),
            };
            let mut sums: BTreeMap<&'static str, (Currency, Sums)> = BTreeMap::new();
            let mut after: Option<String> = None;
            loop {
                let page = clients::page_by_id(conn, after.as_deref(), PAGE, now)?;
                let Some(last) = page.last() else { break };
                after = Some(last.client_id.to_string());
                for client in page.iter().filter(|c| filter.matches(c)) {
                    let (current, new) = (
                        review(&registry, &champion, client, now)?,
                        review(&registry, &challenger, client, now)?,
                    );
                    report.evaluated += 1;
                    sums.entry(client.currency.code())
                        .or_insert_with(|| (client.currency, Sums::default()))
                        .1
                        .add(client, &current, &new);
                    if let Some(change) = change(client, &current, &new) {
                        report.changes.push(change);
                    }
                }
            }
            report.exposure = sums
                .into_iter()
                .map(|(code, (currency, s))| (code.to_owned(), s.view(currency)))
                .collect();
            Ok(report)
        })
        .await
}

/// The active `client_event` stages, and the same with the version in place of its stage.
fn pipelines(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    name: &str,
    number: i32,
) -> Result<(Vec<Stage>, Vec<Stage>), ServiceError> {
    let (policy, version) = crate::service::policies::stage_and_version(conn, name, number, false)?;
    let not_in_pipeline = || {
        ServiceError::invalid(
            "name",
            format!("`{name}` is not an active stage of the client_event pipeline"),
        )
    };
    if !runs_in(&policy.trigger_name, Trigger::ClientEvent) {
        return Err(not_in_pipeline());
    }
    let champion = registry.active(conn)?.stages(Trigger::ClientEvent).to_vec();
    let mut challenger = champion.clone();
    let slot = challenger
        .iter_mut()
        .find(|s| s.name == name)
        .ok_or_else(not_in_pipeline)?;
    *slot = registry.stage(&version)?;
    Ok((champion, challenger))
}

/// A client's standing and band after a scheduled review by `stages`.
fn review(
    registry: &PolicyRegistry,
    stages: &[Stage],
    client: &Client,
    now: DateTime<Utc>,
) -> Result<(Standing, Option<RiskBand>), ServiceError> {
    let run = reviews::run(registry, stages, client, &Cause::Schedule, now)?;
    let band = reviews::risk_of(&run.result).map(|r| r.band);
    Ok((Standing::after(client, &run.result), band))
}

fn change(
    client: &Client,
    (current, current_band): &(Standing, Option<RiskBand>),
    (new, new_band): &(Standing, Option<RiskBand>),
) -> Option<ClientImpact> {
    let same = current.limit == new.limit && current.status == new.status;
    if same && current_band == new_band {
        return None;
    }
    Some(ClientImpact {
        client_id: client.client_id.to_string(),
        currency: client.currency.code().to_owned(),
        exposure: format_minor(client.exposure_minor(), client.currency),
        current_limit: current.limit.to_string(),
        new_limit: new.limit.to_string(),
        current_status: current.status,
        new_status: new.status,
        current_band: *current_band,
        new_band: *new_band,
        referred: new.referred,
    })
}

impl Filter {
    fn matches(&self, client: &Client) -> bool {
        self.currency.is_none_or(|c| c == client.currency)
            && self
                .band
                .is_none_or(|b| client.state.risk.as_ref().map(|r| r.band) == Some(b))
    }
}

impl Sums {
    fn add(
        &mut self,
        client: &Client,
        (current, _): &(Standing, Option<RiskBand>),
        (new, _): &(Standing, Option<RiskBand>),
    ) {
        let exposure = client.exposure_minor();
        let above_current = exposure - current.limit.minor();
        if above_current > 0 {
            self.over_current += 1;
            self.above_current += above_current;
        }
        let above_new = exposure - new.limit.minor();
        if above_new > 0 {
            self.over_new += 1;
            self.above_new += above_new;
        }
    }

    fn view(&self, currency: Currency) -> Overrun {
        Overrun {
            clients_over_current: self.over_current,
            exposure_above_current: format_minor(self.above_current, currency),
            clients_over_new: self.over_new,
            exposure_above_new: format_minor(self.above_new, currency),
        }
    }
}
