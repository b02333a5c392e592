//! Helpers of the identity targets (`identity_aws`, `identity_gcp`,
//! `identity_azure`).

use std::sync::OnceLock;

/// Standard base64 of `data` (the identity targets encode raw bytes so the
/// fuzzer reaches the DER parsers behind the text encoding).
pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A fixed key set of one RSA key (`kid` `fuzz`), for the identity token
/// target: tokens are checked against it, and none is signed by it.
pub fn gcp_jwks() -> Vec<u8> {
    static JWKS: OnceLock<Vec<u8>> = OnceLock::new();
    JWKS.get_or_init(|| {
        br#"{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":"fuzz","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#.to_vec()
    })
    .clone()
}
