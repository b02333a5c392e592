//! Log setup: `--log-level` and `--log-format`, with `RUST_LOG` winning.
//!
//! The level applies to skyfleet's own crates (every target starting with
//! `skyfleet`); other crates log warnings and errors only, so a dependency's
//! chatter does not bury the fleet's decisions. `RUST_LOG`, when set, replaces
//! the whole filter. Logs go to standard error: text (coloured on a terminal
//! only) or one JSON object per line with the event's fields at the top
//! level beside `timestamp`, `level`, `target` and `message`.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Every decision the fleet makes (the default of `run` and `mock`).
    Info,
    /// Also each step and scanner.
    Debug,
    /// Everything, request spans included.
    Trace,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// aws-smithy's connection-poisoning interceptor logs an error whenever a
/// retryable failure happens on a connector that does not expose its
/// connection (ours sends through the shared tower stack, which manages its
/// own pool): noise, not a fault, so it is always off unless `RUST_LOG`
/// says otherwise.
const QUIET: &str = "aws_smithy_runtime::client::http::connection_poisoning=off";

/// The filter `level` stands for: skyfleet's crates at `level`, others at
/// `warn` (`error` when `level` is `error`).
pub fn filter_for(level: LogLevel) -> String {
    let others = match level {
        LogLevel::Error => "error",
        _ => "warn",
    };
    format!("{others},skyfleet={},{QUIET}", level.as_str())
}

/// Installs the global subscriber: `RUST_LOG` when set and valid, else the
/// filter of `level`; lines in `format` on standard error.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!(
                "skyfleet: ignoring RUST_LOG ({e}); logging at {}",
                level.as_str()
            );
            EnvFilter::new(filter_for(level))
        }),
        _ => EnvFilter::new(filter_for(level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_applies_to_skyfleet_crates_and_others_stay_at_warn() {
        let f = filter_for(LogLevel::Info);
        assert!(f.starts_with("warn,skyfleet=info,"), "{f}");
        assert!(EnvFilter::try_new(&f).is_ok(), "{f}");
        assert!(filter_for(LogLevel::Error).starts_with("error,skyfleet=error"));
        for level in LogLevel::value_variants() {
            assert!(EnvFilter::try_new(filter_for(*level)).is_ok());
        }
    }
}
