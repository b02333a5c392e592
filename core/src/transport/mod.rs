//! Shared transport: the tower stack every provider's HTTP calls flow through.
