//! What a sweep found and did: counts, and one verdict per resource seen.

use super::plan::HoldReason;

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Resources with our manager id seen (every store's).
    pub seen: u64,
    /// Resources carrying another store's id: another deployment's (or a
    /// replica's on another store). Never touched.
    pub foreign: u64,
    /// Resources carrying no store id (made before store ids existed).
    /// Never deleted; `adopt` tags those of live workers.
    pub unclaimed: u64,
    /// Unclaimed resources of this store's live workers tagged with this
    /// store's id by an adopting sweep (or that a dry run would tag).
    pub adopted: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans younger than the grace period, left for a later sweep.
    pub waiting: u64,
    /// Deletions (or adoptions) that failed (retried next sweep).
    pub failed: u64,
    /// Orphans old enough to delete that were held back: the store is
    /// younger than the grace period, or the sweep reached its cap.
    pub held_back: u64,
    /// Orphans a dry run would have deleted (listed, not deleted).
    pub would_delete: u64,
    /// Every resource seen, with its verdict: foreign, unclaimed and live
    /// ones in listing order, then the orphans.
    pub resources: Vec<SweptResource>,
    /// Providers whose listing failed, with the error: what they hold was
    /// not seen by this sweep.
    pub list_errors: Vec<(String, String)>,
}

impl SweepReport {
    /// Records `r` and counts its verdict (`seen` is counted by the
    /// caller, as it lists).
    pub fn record(&mut self, r: SweptResource) {
        match r.verdict {
            Verdict::Live => {}
            Verdict::Foreign => self.foreign += 1,
            Verdict::Unclaimed => self.unclaimed += 1,
            Verdict::Adopted | Verdict::WouldAdopt => self.adopted += 1,
            Verdict::Waiting => self.waiting += 1,
            Verdict::HeldBack(_) => self.held_back += 1,
            Verdict::WouldDelete => self.would_delete += 1,
            Verdict::Deleted => self.deleted += 1,
            Verdict::Failed => self.failed += 1,
        }
        self.resources.push(r);
    }
}

/// One resource a sweep saw, and what it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptResource {
    /// The provider id.
    pub provider: String,
    /// The resource's kind (`instance`, `virtualMachine`, `disk`, ...).
    pub kind: String,
    /// The cloud's id of the resource.
    pub id: String,
    /// The worker id from its tags.
    pub worker: Option<String>,
    /// The store id from its tags.
    pub store: Option<String>,
    /// What the sweep decided.
    pub verdict: Verdict,
}

/// What a sweep decided for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This store's, and its worker is live: not an orphan.
    Live,
    /// Another store's: not this store's business.
    Foreign,
    /// No store id, and not adopted: listed, never deleted.
    Unclaimed,
    /// Was unclaimed; its worker is live here, so it now carries this
    /// store's id.
    Adopted,
    /// Unclaimed, of a live worker: a dry run would adopt it.
    WouldAdopt,
    /// An orphan younger than the grace period.
    Waiting,
    /// An orphan old enough to delete, held back.
    HeldBack(HoldReason),
    /// An orphan a dry run would delete.
    WouldDelete,
    /// An orphan deleted.
    Deleted,
    /// Deleting (or adopting) it failed; the next sweep tries again.
    Failed,
}

impl Verdict {
    /// A short stable description for logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Live => "live",
            Verdict::Foreign => "foreign",
            Verdict::Unclaimed => "unclaimed",
            Verdict::Adopted => "adopted",
            Verdict::WouldAdopt => "would adopt",
            Verdict::Waiting => "waiting",
            Verdict::HeldBack(HoldReason::StoreTooYoung) => "held back (store too young)",
            Verdict::HeldBack(HoldReason::OverCap) => "held back (over cap)",
            Verdict::WouldDelete => "would delete",
            Verdict::Deleted => "deleted",
            Verdict::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
