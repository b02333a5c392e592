//! AWS instance identity proofs from arbitrary bytes.
//!
//! The input is a document and a signature separated by a line `--`; both
//! go to `AwsVerifier::verify_document` (AWS's bundled certificates), the
//! whole input to `verify_pkcs7` (as text, and base64-encoded so the fuzzer
//! reaches the DER parser), and the document to `parse_document`. No input
//! may panic, and none may verify: nothing here is signed by AWS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{b64, split_parts};
use skyfleet_identity::aws::{parse_document, AwsExpected, AwsVerifier};

fuzz_target!(|data: &[u8]| {
    let v = AwsVerifier::default();
    let want = AwsExpected {
        instance_id: "i-1234567890abcdef0".into(),
        region: "us-west-2".into(),
        ..AwsExpected::default()
    };
    let parts = split_parts(data);
    let doc = String::from_utf8_lossy(parts.first().copied().unwrap_or_default());
    let sig = String::from_utf8_lossy(parts.get(1).copied().unwrap_or_default());
    let _ = parse_document(doc.as_bytes());
    assert!(v.verify_document(&doc, &sig, &want).is_err());
    assert!(v
        .verify_pkcs7(&String::from_utf8_lossy(data), &want)
        .is_err());
    assert!(v.verify_pkcs7(&b64(data), &want).is_err());
});
