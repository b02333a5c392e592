//! Azure attested data documents from arbitrary bytes.
//!
//! The input goes to `AzureVerifier::verify` (Microsoft's roots, no AIA
//! fetch) as the `signature` text and base64-encoded (so the fuzzer reaches
//! the CMS and X.509 parsers directly), and to the attested JSON and
//! timestamp parsers. No input may panic and none may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{b64, runtime};
use skyfleet_identity::azure::{
    parse_attested, parse_timestamp, AzureConfig, AzureExpected, AzureVerifier,
};

fuzz_target!(|data: &[u8]| {
    let v = AzureVerifier::new(AzureConfig::new().without_aia()).expect("the default roots");
    let want = AzureExpected {
        vm_id: "0f7a9c4e-8f2b-4c1d-9e3a-5b6c7d8e9f01".into(),
        nonce: Some("1234567890".into()),
    };
    let now = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("a time");
    let text = String::from_utf8_lossy(data);
    let _ = parse_attested(data);
    let _ = parse_timestamp(&text);
    runtime().block_on(async {
        assert!(v.verify(&text, &want, now).await.is_err());
        assert!(v.verify(&b64(data), &want, now).await.is_err());
    });
});
