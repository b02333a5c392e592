//! [`StaticBuilder`]: the one way to construct a [`StaticProvider`].

use std::sync::Arc;
use std::time::Duration;

use skyfleet_core::clock::{Clock, SystemClock};

use crate::provider::StaticProvider;

/// Builds a [`StaticProvider`].
///
/// ```
/// use std::time::Duration;
/// use skyfleet_static::StaticBuilder;
/// let provider = StaticBuilder::new("static")
///     .with_check_interval(Duration::from_secs(30))
///     .build();
/// # let _ = provider;
/// ```
#[derive(Debug, Clone)]
pub struct StaticBuilder {
    id: String,
    clock: Arc<dyn Clock>,
    check_interval: Duration,
}

impl StaticBuilder {
    /// A builder for provider `id`: the system clock, registered workers
    /// stepped every 60 s.
    pub fn new(id: impl Into<String>) -> Self {
        StaticBuilder {
            id: id.into(),
            clock: Arc::new(SystemClock),
            check_interval: Duration::from_secs(60),
        }
    }

    /// Uses `clock` for deadlines and registration times.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long until a registered worker is stepped again (default 60 s).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// The provider.
    pub fn build(self) -> StaticProvider {
        StaticProvider::assemble(self.id, self.clock, self.check_interval)
    }
}
