//! Log setup: `--log-level` and `--log-format`, with `RUST_LOG` winning.
//!
//! The level applies to skyfleet's own crates (every target starting with
//! `skyfleet`); other crates log warnings and errors only, so a dependency's
//! chatter does not bury the fleet's decisions. `RUST_LOG`, when set, replaces
//! the whole filter. Logs go to standard error: text (coloured on a terminal
//! only) or one JSON object per line with the event's fields at the top
//! level beside `timestamp`, `level`, `target` and `message`.
//!
//! Whatever the filter, the AWS SDK's request machinery (`aws_smithy_runtime`,
//! `aws_smithy_runtime_api`, `aws_sigv4`) never logs below `info`: at
//! `debug` and `trace` it prints the resolved credentials (the access key
//! id) and the signing parameters.

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

/// Targets that print credentials at `debug` and `trace`.
const CREDENTIAL_LOGGING: &[&str] = &["aws_smithy_runtime", "aws_smithy_runtime_api", "aws_sigv4"];

/// Whether a span or event of `target` at `level` may be logged at all:
/// not when it comes from a [`CREDENTIAL_LOGGING`] target (or a module
/// under one) below `info`.
fn never_credentials(target: &str, level: tracing::Level) -> bool {
    let risky = CREDENTIAL_LOGGING.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    !(risky && level > tracing::Level::INFO)
}

/// Installs the global subscriber: `RUST_LOG` when set and valid, else the
/// filter of `level`, never logging credentials ([`never_credentials`]);
/// lines in `format` on standard error.
pub fn init(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
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
    let cap = tracing_subscriber::filter::filter_fn(|m| never_credentials(m.target(), *m.level()));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => layer
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .with_filter(cap)
            .boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .with_filter(cap)
            .boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_sdk_request_machinery_never_logs_below_info() {
        use tracing::Level;
        let meta = never_credentials;
        for target in [
            "aws_smithy_runtime",
            "aws_smithy_runtime::client::orchestrator::auth",
            "aws_smithy_runtime_api::client::runtime_plugin",
            "aws_sigv4::http_request::sign",
        ] {
            assert!(!meta(target, Level::TRACE), "{target}");
            assert!(!meta(target, Level::DEBUG), "{target}");
            assert!(meta(target, Level::INFO), "{target}");
            assert!(meta(target, Level::WARN), "{target}");
        }
        for target in [
            "aws_smithy_runtimex",
            "skyfleet_core::fleet",
            "reqwest",
            "hyper_util",
        ] {
            assert!(meta(target, Level::TRACE), "{target}");
        }
    }

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
