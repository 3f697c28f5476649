//! Creating, changing and reading clients. Every change is an audit record in the same
//! transaction as the change itself.

use chrono::{SubsecRound, Utc};
use serde_json::{Value, json};

use super::ServiceError;
use crate::audit::{self, AuditRef, Entry};
use crate::domain::{Client, ClientId, ClientProfile, ClientStatus, RiskBand};
use crate::store::clients::{self as table, ClientQuery};
use crate::store::{Store, read_snapshot, write_tx_retrying};

/// The result of a `PUT`: the client as stored, whether it was new, and the audit record
/// of the change (none when the body changed nothing).
#[derive(Debug)]
pub struct Upserted {
    pub client: Client,
    pub created: bool,
    pub audit: Option<AuditRef>,
}

/// Creates the client or replaces its profile. A prospect made by a credit decision becomes
/// a regular client here. The account currency cannot change once set: exposure, limits and
/// history are kept in it.
pub async fn upsert(
    store: &Store,
    id: ClientId,
    profile: ClientProfile,
    actor: String,
) -> Result<Upserted, ServiceError> {
    store
        .run(move |conn| {
            write_tx_retrying(conn, |conn| {
                let now = Utc::now().trunc_subsecs(6);
                let before = table::find_locked(conn, &id)?;
                let (status, created) = match &before {
                    Some(existing) => {
                        if existing.currency != profile.currency {
                            return Err(ServiceError::invalid(
                                "currency",
                                format!(
                                    "the account currency of an existing client cannot change (it is {})",
                                    existing.currency
                                ),
                            ));
                        }
                        (profile.status.unwrap_or(existing.status), false)
                    }
                    None => (profile.status.unwrap_or(ClientStatus::Active), true),
                };
                let after = profile_json(&profile, status, false);
                let before_json = before.as_ref().map(client_profile_json);
                if before_json.as_ref() == Some(&after) {
                    let client = before.ok_or_else(|| not_found(&id))?;
                    return Ok(Upserted {
                        client,
                        created: false,
                        audit: None,
                    });
                }
                if created {
                    table::insert(conn, &id, &profile, status, false, now)?;
                } else {
                    table::update_profile(conn, &id, &profile, status, now)?;
                }
                let kind = if created { "client.created" } else { "client.updated" };
                let audit = audit::append(
                    conn,
                    Entry {
                        kind,
                        subject: format!("client:{id}"),
                        client_id: Some(id.to_string()),
                        actor: actor.clone(),
                        payload: json!({ "client_id": id.as_str(), "before": before_json, "after": after }),
                    },
                )?;
                let client = table::find(conn, &id)?.ok_or_else(|| not_found(&id))?;
                Ok(Upserted {
                    client,
                    created,
                    audit: Some(audit),
                })
            })
        })
        .await
}

pub async fn get(store: &Store, id: ClientId) -> Result<Client, ServiceError> {
    store
        .run(move |conn| {
            read_snapshot(conn, |conn| {
                table::find(conn, &id)?.ok_or_else(|| not_found(&id))
            })
        })
        .await
}

/// A page of clients, newest first.
pub async fn list(
    store: &Store,
    band: Option<RiskBand>,
    status: Option<ClientStatus>,
    after: Option<(chrono::DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<Client>, ServiceError> {
    let query = ClientQuery {
        band,
        status,
        after,
        limit,
    };
    store
        .run(move |conn| read_snapshot(conn, |conn| Ok(table::list(conn, &query)?)))
        .await
}

fn not_found(id: &ClientId) -> ServiceError {
    ServiceError::NotFound {
        what: format!("client `{id}`"),
    }
}

/// The profile as the audit log keeps it (exact amounts as strings), from a request or from
/// the stored client, so that "nothing changed" is one comparison.
struct ProfileFields<'a> {
    name: &'a str,
    registration_number: Option<&'a str>,
    country: &'a str,
    sector: Option<&'a str>,
    currency: &'a str,
    credit_limit: String,
    status: ClientStatus,
    is_prospect: bool,
}

impl ProfileFields<'_> {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "registration_number": self.registration_number,
            "country": self.country,
            "sector": self.sector,
            "currency": self.currency,
            "credit_limit": self.credit_limit,
            "status": self.status.as_str(),
            "is_prospect": self.is_prospect,
        })
    }
}

pub(crate) fn profile_json(p: &ClientProfile, status: ClientStatus, is_prospect: bool) -> Value {
    ProfileFields {
        name: &p.name,
        registration_number: p.registration_number.as_deref(),
        country: p.country.code(),
        sector: p.sector.as_ref().map(|s| s.as_str()),
        currency: p.currency.code(),
        credit_limit: p.credit_limit.to_string(),
        status,
        is_prospect,
    }
    .to_json()
}

fn client_profile_json(c: &Client) -> Value {
    ProfileFields {
        name: &c.name,
        registration_number: c.registration_number.as_deref(),
        country: &c.country,
        sector: c.sector.as_deref(),
        currency: c.currency.code(),
        credit_limit: c.credit_limit.to_string(),
        status: c.status,
        is_prospect: c.is_prospect,
    }
    .to_json()
}
