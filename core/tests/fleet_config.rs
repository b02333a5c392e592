//! `FleetConfig::validate`: settings that cannot hold are refused, naming
//! the field (the settings' own checks; pools are checked by the builder).

use std::time::Duration;

use skyfleet_core::fleet::FleetConfig;
use skyfleet_core::ErrorKind;

#[test]
fn a_lease_that_cannot_cover_a_step_and_its_write_is_refused_naming_both_fields() {
    for (lease, step) in [(60, 60), (65, 60), (30, 60), (5, 5)] {
        let c = FleetConfig {
            lease: Duration::from_secs(lease),
            step_timeout: Duration::from_secs(step),
            ..FleetConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "fleet.step_timeout"),
            "{e}"
        );
        assert!(e.message().contains("fleet.lease"), "{e}");
        assert!(e.message().contains("fleet.step_timeout"), "{e}");
    }
    for (lease, step) in [(66, 60), (120, 60), (6, 5)] {
        let c = FleetConfig {
            lease: Duration::from_secs(lease),
            step_timeout: Duration::from_secs(step),
            ..FleetConfig::default()
        };
        assert!(c.validate().is_ok(), "lease {lease} s, step {step} s");
    }
}

#[test]
fn a_blank_manager_id_is_refused_by_name() {
    assert!(FleetConfig::default().validate().is_ok());
    for blank in ["", "  "] {
        let c = FleetConfig {
            manager_id: blank.into(),
            ..FleetConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "fleet.manager_id"),
            "{e}"
        );
    }
}
