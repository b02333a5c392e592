//! AWS instance identity documents: both signature forms verify for the
//! right instance only, with the right certificate only, and no byte of a
//! document or signature can change without the proof failing.

use proptest::prelude::*;
use skyfleet_identity::aws::{AwsExpected, AwsTrust, AwsVerifier, SignatureForm};
use skyfleet_identity::testing::aws::AwsIssuer;
use skyfleet_identity::Reason;

fn issuer() -> &'static AwsIssuer {
    static I: std::sync::OnceLock<AwsIssuer> = std::sync::OnceLock::new();
    I.get_or_init(|| AwsIssuer::new("us-east-1"))
}

fn stranger() -> &'static AwsIssuer {
    static I: std::sync::OnceLock<AwsIssuer> = std::sync::OnceLock::new();
    I.get_or_init(|| AwsIssuer::new("us-east-1"))
}

fn verifier() -> AwsVerifier {
    AwsVerifier::new(issuer().trust())
}

fn reason(r: Result<impl std::fmt::Debug, skyfleet_identity::Rejected>) -> Reason {
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "signature validation error");
    e.reason()
}

#[test]
fn a_good_document_verifies_in_both_forms() {
    let i = issuer();
    let facts = i.instance(1);
    let doc = i.document(&facts);
    let v = verifier();
    let got = v.verify_document(&doc, &i.signature(&doc), &facts).unwrap();
    assert_eq!(got.instance_id, facts.instance_id);
    assert_eq!(got.private_ip, facts.private_ip);
    let got = v.verify_pkcs7(&i.rsa2048(&doc), &facts).unwrap();
    assert_eq!(got.region, "us-east-1");
    // PEM armour, as the User Guide wraps it, is accepted.
    let armoured = format!(
        "-----BEGIN PKCS7-----\n{}\n-----END PKCS7-----\n",
        i.rsa2048(&doc)
    );
    v.verify_pkcs7(&armoured, &facts).unwrap();
    // Unknown facts are not compared.
    let partial = AwsExpected {
        instance_id: facts.instance_id.clone(),
        region: facts.region.clone(),
        ..AwsExpected::default()
    };
    v.verify_document(&doc, &i.signature(&doc), &partial)
        .unwrap();
}

#[test]
fn the_same_proof_fails_for_another_worker() {
    let i = issuer();
    let facts = i.instance(2);
    let doc = i.document(&facts);
    let sig = i.signature(&doc);
    let v = verifier();
    for change in [
        |f: &mut AwsExpected| f.instance_id = "i-00000000000000099".into(),
        |f: &mut AwsExpected| f.account_id = Some("999999999999".into()),
        |f: &mut AwsExpected| f.image_id = Some("ami-other".into()),
        |f: &mut AwsExpected| f.instance_type = Some("m5.xlarge".into()),
        |f: &mut AwsExpected| f.availability_zone = Some("us-east-1b".into()),
        |f: &mut AwsExpected| f.private_ip = Some("10.9.9.9".into()),
    ] {
        let mut other = facts.clone();
        change(&mut other);
        assert_eq!(
            reason(v.verify_document(&doc, &sig, &other)),
            Reason::WrongInstance
        );
        assert_eq!(
            reason(v.verify_pkcs7(&i.rsa2048(&doc), &other)),
            Reason::WrongInstance
        );
    }
    // Another region: that region's certificate is used, and there is none.
    let mut elsewhere = facts.clone();
    elsewhere.region = "eu-west-1".into();
    assert_eq!(
        reason(v.verify_document(&doc, &sig, &elsewhere)),
        Reason::UnknownSigner
    );
}

#[test]
fn a_signer_outside_the_trust_is_refused() {
    let (i, s) = (issuer(), stranger());
    let facts = i.instance(3);
    let doc = i.document(&facts);
    let v = verifier();
    assert_eq!(
        reason(v.verify_document(&doc, &s.signature(&doc), &facts)),
        Reason::BadSignature
    );
    assert_eq!(
        reason(v.verify_pkcs7(&s.rsa2048(&doc), &facts)),
        Reason::UnknownSigner
    );
    // AWS's bundled certificates do not verify a self-made document.
    let bundled = AwsVerifier::new(AwsTrust::bundled());
    assert_eq!(
        reason(bundled.verify_document(&doc, &i.signature(&doc), &facts)),
        Reason::BadSignature
    );
    // The RSA certificate does not verify the RSA-2048 form, nor the reverse.
    let crossed = AwsVerifier::new(
        AwsTrust::empty()
            .with_certificate(
                SignatureForm::Rsa,
                "us-east-1",
                i.certificate_pem(SignatureForm::Rsa2048),
            )
            .unwrap()
            .with_certificate(
                SignatureForm::Rsa2048,
                "us-east-1",
                i.certificate_pem(SignatureForm::Rsa),
            )
            .unwrap(),
    );
    assert_eq!(
        reason(crossed.verify_document(&doc, &i.signature(&doc), &facts)),
        Reason::BadSignature
    );
    assert_eq!(
        reason(crossed.verify_pkcs7(&i.rsa2048(&doc), &facts)),
        Reason::UnknownSigner
    );
}

#[test]
fn garbage_is_malformed() {
    let i = issuer();
    let facts = i.instance(4);
    let v = verifier();
    assert_eq!(
        reason(v.verify_document("{}", "!!", &facts)),
        Reason::Malformed
    );
    assert_eq!(reason(v.verify_pkcs7("QUJD", &facts)), Reason::Malformed);
    let huge = "A".repeat(200_000);
    assert_eq!(reason(v.verify_pkcs7(&huge, &facts)), Reason::Malformed);
    // A signed non-document is malformed once its signature holds.
    let not_json = "not a document";
    assert_eq!(
        reason(v.verify_document(not_json, &i.signature(not_json), &facts)),
        Reason::Malformed
    );
}

fn flip(text: &str, at: usize, bit: u8) -> String {
    let mut b = text.as_bytes().to_vec();
    let at = at % b.len();
    b[at] ^= 1 << (bit % 8);
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn a_flipped_bit_anywhere_fails(at in 0usize..100_000, bit in 0u8..8, n in 0u64..4) {
        let i = issuer();
        let facts = i.instance(100 + n);
        let doc = i.document(&facts);
        let sig = i.signature(&doc);
        let p7 = i.rsa2048(&doc);
        let v = verifier();
        prop_assert!(v.verify_document(&flip(&doc, at, bit), &sig, &facts).is_err());
        prop_assert!(v.verify_document(&doc, &flip(&sig, at, bit), &facts).is_err());
        prop_assert!(v.verify_pkcs7(&flip(&p7, at, bit), &facts).is_err());
    }
}
