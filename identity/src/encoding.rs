//! The text encodings of proofs: base64 with IMDS's line breaks, and the PEM
//! armour the AWS User Guide wraps around the PKCS#7 form.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::error::Reason;

/// The largest base64 text accepted (a PKCS#7 message with its chain is a
/// few KiB).
pub(crate) const MAX_ENCODED_BYTES: usize = 96 * 1024;

/// Standard base64, ASCII whitespace (IMDS wraps lines) ignored.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, Reason> {
    if text.len() > MAX_ENCODED_BYTES {
        return Err(Reason::Malformed);
    }
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| Reason::Malformed)
}

/// The text between `-----BEGIN PKCS7-----` and `-----END PKCS7-----` when
/// present.
pub(crate) fn strip_pem_armour(text: &str) -> &str {
    const BEGIN: &str = "-----BEGIN PKCS7-----";
    const END: &str = "-----END PKCS7-----";
    match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b + BEGIN.len() <= e => &text[b + BEGIN.len()..e],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armour_and_whitespace() {
        assert_eq!(
            strip_pem_armour("-----BEGIN PKCS7-----\nQUJD\n-----END PKCS7-----\n"),
            "\nQUJD\n"
        );
        assert_eq!(strip_pem_armour("QUJD"), "QUJD");
        assert_eq!(decode_base64("QU\nJD\r\n").unwrap(), b"ABC");
        assert_eq!(decode_base64("QUJ!"), Err(Reason::Malformed));
        // Non-canonical trailing bits are refused (a flipped bit shows).
        assert_eq!(decode_base64("QUJE"), Ok(b"ABD".to_vec()));
        assert_eq!(decode_base64("QR=="), Err(Reason::Malformed));
    }
}
