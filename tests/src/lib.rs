//! Workspace integration tests and the provider conformance suite live in `tests/`.
