//! Pure types and rules of the credit domain. No I/O here.

pub mod client;
pub mod money;

pub use client::*;
pub use money::{Currency, Money, format_minor};
