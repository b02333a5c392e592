//! Launch templates: the state of one account's templates in one region.
//! Each template has a single version (1), which is both its default and
//! its latest; its data is kept as the RunInstances parameters it supplies.

use std::collections::BTreeMap;

/// The RunInstances parameter groups (a name up to its first `.`) a
/// template's data may supply. `TagSpecification` is kept apart, as the
/// template's instance tags.
pub const TEMPLATE_GROUPS: &[&str] = &[
    "ImageId",
    "InstanceType",
    "KeyName",
    "SecurityGroupId",
    "UserData",
    "InstanceMarketOptions",
    "Placement",
    "MetadataOptions",
    "BlockDeviceMapping",
];

/// One launch template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchTemplate {
    /// Creation order within the partition (pagination).
    pub seq: u64,
    /// `lt-` and 17 hex digits.
    pub id: String,
    /// The unique name.
    pub name: String,
    /// RFC 3339 creation time.
    pub create_time: String,
    /// The ARN of the creator.
    pub created_by: String,
    /// The `ClientToken` it was created with (empty when none).
    pub client_token: String,
    /// The RunInstances parameters version 1 supplies, sorted by name.
    pub params: Vec<(String, String)>,
    /// The instance tags version 1 supplies.
    pub instance_tags: BTreeMap<String, String>,
    /// The volume tags version 1 supplies (`TagSpecification` of type
    /// `volume`), put on the volumes its launches create.
    #[serde(default)]
    pub volume_tags: BTreeMap<String, String>,
    /// The template's own tags.
    pub tags: BTreeMap<String, String>,
}

/// The templates of one partition, in creation order. Bounded by the
/// caller (the `launch_template_limit` setting).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Templates {
    list: Vec<LaunchTemplate>,
    next_seq: u64,
}

impl Templates {
    /// The creation number the next template gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many templates exist.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The template with this id.
    pub fn by_id(&self, id: &str) -> Option<&LaunchTemplate> {
        self.list.iter().find(|t| t.id == id)
    }

    /// The template with this name.
    pub fn by_name(&self, name: &str) -> Option<&LaunchTemplate> {
        self.list.iter().find(|t| t.name == name)
    }

    /// The template created with this (non-empty) client token.
    pub fn by_token(&self, token: &str) -> Option<&LaunchTemplate> {
        self.list
            .iter()
            .find(|t| !token.is_empty() && t.client_token == token)
    }

    /// Every template, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &LaunchTemplate> {
        self.list.iter()
    }

    /// Adds a template (its `seq` is assigned here) and returns it.
    pub fn insert(&mut self, mut t: LaunchTemplate) -> &LaunchTemplate {
        t.seq = self.next_seq;
        self.next_seq += 1;
        self.list.push(t);
        let last = self.list.len() - 1;
        &self.list[last]
    }

    /// Removes and returns the template with this id.
    pub fn remove(&mut self, id: &str) -> Option<LaunchTemplate> {
        let at = self.list.iter().position(|t| t.id == id)?;
        Some(self.list.remove(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(id: &str, name: &str, token: &str) -> LaunchTemplate {
        LaunchTemplate {
            seq: 0,
            id: id.into(),
            name: name.into(),
            create_time: String::new(),
            created_by: String::new(),
            client_token: token.into(),
            params: Vec::new(),
            instance_tags: BTreeMap::new(),
            volume_tags: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn insert_find_remove() {
        let mut ts = Templates::default();
        ts.insert(template("lt-1", "a", ""));
        assert_eq!(ts.insert(template("lt-2", "b", "tok")).seq, 1);
        assert_eq!(ts.by_name("b").map(|t| t.id.as_str()), Some("lt-2"));
        assert!(ts.by_token("").is_none());
        assert!(ts.by_token("tok").is_some());
        assert!(ts.remove("lt-1").is_some());
        assert!(ts.by_id("lt-1").is_none());
        assert_eq!(ts.len(), 1);
    }
}
