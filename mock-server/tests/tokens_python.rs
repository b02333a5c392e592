//! The token endpoints against the official Python credential libraries:
//! `tests-python/run.sh tokens` with this build's `skyfleet-mock` gets
//! tokens through azure-identity's `ClientSecretCredential` and
//! `CertificateCredential` (and MSAL's instance discovery) and google-auth's
//! authorized-user credentials, and checks their refusals (skipped with a
//! message where pip cannot install the libraries).

mod python_support;

#[test]
fn official_python_credential_libraries_get_and_are_refused_tokens() {
    python_support::run_suite("tokens");
}
