//! The auditor's side: the append-only chain and where tampering is found, replay of every
//! decision, and exports.

mod export;
pub(crate) mod replay;
mod tamper;
