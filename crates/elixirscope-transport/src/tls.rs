//! TLS for the ingest listener.
//!
//! Each capture gets a fresh self-signed certificate; the agent is given the
//! certificate itself and accepts no other (pinning), so no certificate
//! authority is involved and a stolen certificate is useless for the next
//! capture. Plaintext is only for loopback: [`needs_tls`] says when TLS is
//! required.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::net::IpAddr;
use std::sync::Arc;

/// A capture's TLS identity.
#[derive(Clone)]
pub struct CaptureTls {
    pub config: Arc<ServerConfig>,
    /// The certificate (DER) the agent pins.
    pub cert_der: Vec<u8>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for the ingest listener: {0}")]
pub struct TlsError(String);

impl CaptureTls {
    /// Generates a self-signed certificate for `host` and a server config for it.
    pub fn generate(host: &str) -> Result<CaptureTls, TlsError> {
        let names = vec![host.to_owned(), "elixirscope-collector".to_owned()];
        let key = rcgen::KeyPair::generate().map_err(|e| TlsError(e.to_string()))?;
        let params = rcgen::CertificateParams::new(names).map_err(|e| TlsError(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError(e.to_string()))?;
        let cert_der = cert.der().to_vec();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key_der)
            .map_err(|e| TlsError(e.to_string()))?;
        Ok(CaptureTls {
            config: Arc::new(config),
            cert_der,
        })
    }
}

/// Whether a listener bound to `ip` must use TLS (anything but loopback).
pub fn needs_tls(ip: IpAddr) -> bool {
    !ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_usable_identity_and_knows_loopback() {
        let t = CaptureTls::generate("localhost").unwrap();
        assert!(t.cert_der.len() > 100);
        assert!(!needs_tls("127.0.0.1".parse().unwrap()));
        assert!(needs_tls("10.1.2.3".parse().unwrap()));
        assert!(!needs_tls("::1".parse().unwrap()));
    }
}
