//! skyfleet provider for static, pre-existing machines that register themselves.
