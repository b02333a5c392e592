//! The demo's progress display: a bar per pool, and one line per phase.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use skyfleet_core::Worker;
use std::collections::BTreeMap;

use crate::mock_clouds::DemoCloud;

/// A bar per pool (none with `--json`).
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
}

impl Bars {
    /// Bars for `clouds`, each out of `n` (none when `json`).
    pub fn new(json: bool, clouds: &[DemoCloud], n: u32) -> Self {
        if json {
            return Bars {
                multi: None,
                bars: Vec::new(),
            };
        }
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{bar:40.cyan/blue}] {pos:>4}/{len:4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = clouds
            .iter()
            .map(|c| {
                let b = multi.add(ProgressBar::new(n as u64));
                b.set_style(style.clone());
                b.set_prefix(c.provider.id().to_string());
                b
            })
            .collect();
        Bars {
            multi: Some(multi),
            bars,
        }
    }

    /// Moves bar `i` to `pos` with `msg`.
    pub fn update(&self, i: usize, pos: u64, msg: String) {
        if let Some(b) = self.bars.get(i) {
            b.set_position(pos);
            b.set_message(msg);
        }
    }

    /// Prints a phase title above the bars.
    pub fn phase(&self, title: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(title);
        }
    }

    /// Moves every bar back to 0.
    pub fn reset(&self) {
        for b in &self.bars {
            b.set_position(0);
        }
    }

    /// Leaves the bars where they are.
    pub fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
    }
}

/// The workers by phase: `running 3, requested 1`.
pub fn describe(workers: &[Worker]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for w in workers {
        *by.entry(w.phase.as_str()).or_default() += 1;
    }
    by.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
