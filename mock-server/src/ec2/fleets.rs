//! CreateFleet's ClientToken records: the answer each token got, so a
//! retry gets the same fleet. Bounded: at most [`MAX_FLEET_TOKENS`] per
//! partition, the oldest forgotten first.

use std::collections::VecDeque;

/// Most fleet ClientTokens one partition remembers.
pub const MAX_FLEET_TOKENS: usize = 1_000;

/// What one CreateFleet with a ClientToken answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FleetRecord {
    /// The ClientToken.
    pub token: String,
    /// Every parameter of the request except the token.
    pub fingerprint: Vec<(String, String)>,
    /// The answer's body after `requestId`: `fleetId`, `errorSet` and
    /// `fleetInstanceSet`.
    pub body: String,
}

/// The records of one partition, oldest first.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FleetTokens {
    list: VecDeque<FleetRecord>,
}

impl FleetTokens {
    /// The record of this (non-empty) token.
    pub fn get(&self, token: &str) -> Option<&FleetRecord> {
        self.list
            .iter()
            .find(|r| !token.is_empty() && r.token == token)
    }

    /// Remembers a record, forgetting the oldest beyond the bound.
    pub fn insert(&mut self, record: FleetRecord) {
        while self.list.len() >= MAX_FLEET_TOKENS {
            self.list.pop_front();
        }
        self.list.push_back(record);
    }

    /// How many records are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first() {
        let mut t = FleetTokens::default();
        for i in 0..=MAX_FLEET_TOKENS {
            t.insert(FleetRecord {
                token: format!("t{i}"),
                fingerprint: Vec::new(),
                body: String::new(),
            });
        }
        assert_eq!(t.len(), MAX_FLEET_TOKENS);
        assert!(t.get("t0").is_none());
        assert!(t.get(&format!("t{MAX_FLEET_TOKENS}")).is_some());
        assert!(t.get("").is_none());
    }
}
