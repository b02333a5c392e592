//! The Compute Engine methods: `compute.instances.*` ([`instances`]) and
//! `compute.zoneOperations.*` ([`operations`]).

pub mod instances;
pub mod operations;
