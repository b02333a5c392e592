//! What every cloud's [`Provider`](super::Provider) implementation shares,
//! one concern per module (like `object_store`'s `client/` folder).
//!
//! - [`paginate`](mod@paginate) drives a paged listing, with one runaway cap;
//! - [`fanout`](mod@fanout) groups the workers of a `step_many` call and steps them with
//!   bounded concurrency, answers in input order;
//! - [`poll`](mod@poll) takes the "not due / poll / expired or lost -> look up by name"
//!   ladder of an asynchronous cloud operation;
//! - [`secret`](mod@secret) holds a string that never shows in logs;
//! - [`token_cache`](mod@token_cache) keeps a bearer token with expiry, refreshed once at a time,
//!   under a timeout;
//! - [`request`](mod@request) is the one request shape of REST clouds over the transport.

pub mod fanout;
pub mod paginate;
pub mod poll;
pub mod request;
pub mod secret;
pub mod token_cache;

pub use fanout::{bounded, group_by};
pub use paginate::{paginate, Page, MAX_PAGES};
pub use poll::{advance, OnStreak, Polled, Rung};
pub use request::{ApiRequest, ApiResponse};
pub use secret::Secret;
pub use token_cache::{Token, TokenCache};
