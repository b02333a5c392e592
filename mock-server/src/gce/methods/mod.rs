//! The Compute Engine methods: `compute.instances.*` ([`instances`] for
//! insert, get and list; [`bulk`] for `bulkInsert`; [`power`] for delete, start, stop, suspend and
//! resume; [`labels`] for `setLabels`; [`aggregated`] for
//! `aggregatedList`) and `compute.zoneOperations.*` ([`operations`]);
//! [`paging`] holds what lists share.

pub mod aggregated;
pub mod bulk;
pub mod instances;
pub mod labels;
pub mod operations;
pub mod paging;
pub mod power;
