//! skyfleet provider for Google Compute Engine: Compute REST with gcp_auth tokens.
