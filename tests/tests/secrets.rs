//! Secrets never reach `Debug` output.

#[test]
fn provider_configs_redact_secrets_in_debug() {
    let aws = skyfleet_aws::AwsBuilder::new().with_static_credentials(
        "AKIDVISIBLE",
        "aws-secret-must-not-leak",
        Some("aws-session-token-must-not-leak".to_string()),
    );
    let d = format!("{aws:?}");
    assert!(!d.contains("aws-secret-must-not-leak"), "{d}");
    assert!(!d.contains("aws-session-token-must-not-leak"), "{d}");

    let mut az = skyfleet_azure::AzureConfig::new("00000000-0000-0000-0000-000000000001");
    az.credential = skyfleet_azure::CredentialConfig::StaticToken {
        token: skyfleet_azure::Secret::new("azure-token-must-not-leak"),
    };
    let d = format!("{az:?} {:?}", az.credential);
    assert!(!d.contains("azure-token-must-not-leak"), "{d}");

    let gcp = skyfleet_gcp::GcpBuilder::new("p").with_credentials(
        skyfleet_gcp::Credentials::static_token("gcp-token-must-not-leak"),
    );
    let d = format!("{gcp:?}");
    assert!(!d.contains("gcp-token-must-not-leak"), "{d}");
}
