//! The `--tls` certificate: self-signed for `127.0.0.1` and `localhost`,
//! made fresh at every start (rcgen), served through rustls.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A generated certificate and the acceptor that serves it.
pub struct Tls {
    /// The certificate in PEM, for clients to trust.
    pub cert_pem: String,
    /// The TLS acceptor for the serve loop.
    pub acceptor: TlsAcceptor,
}

/// Makes a self-signed certificate for `127.0.0.1` and `localhost` and a
/// rustls server configuration (HTTP/1.1 only) that serves it.
pub fn self_signed() -> Result<Tls, String> {
    // A process-wide provider keeps rustls users in this process (clients in
    // tests, for instance) from panicking when several providers are
    // compiled in. It fails only if one is already installed, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate the certificate: {e}"))?;
    let cert_pem = certified.cert.pem();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let key_der =
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));

    // The provider is given explicitly, so the configuration never depends
    // on which process-wide default won.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        cert_pem,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}
