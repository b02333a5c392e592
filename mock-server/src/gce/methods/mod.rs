//! The Compute Engine methods: `compute.instances.*` ([`instances`], and
//! [`labels`] for `setLabels`) and `compute.zoneOperations.*`
//! ([`operations`]).

pub mod instances;
pub mod labels;
pub mod operations;
