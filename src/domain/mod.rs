//! Pure types and rules of the credit domain. No I/O here.

pub mod client;
pub mod events;
pub mod ledger;
pub mod money;
pub mod request;
pub mod review;
pub mod view;

pub use client::*;
pub use money::{Currency, Money, format_minor};
pub use request::{Channel, CreditRequest, MAX_REQUESTED_TERMS_DAYS, Prospect};
pub use view::ClientView;
