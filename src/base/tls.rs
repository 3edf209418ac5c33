//! TLS on rustls with the ring provider, with certificates pinned instead of signed by an
//! authority. A node that serves HTTPS makes a self-signed certificate at first start (rcgen)
//! and keeps it in its data directory ([`Identity`]); a client pins the other side by the
//! SHA-256 fingerprint of its DER encoding ([`PinVerifier`]).
//!
//! Invariants: a pinned certificate is trusted on first use (and shown to the admin), checked
//! on every connection after, never accepted by turning verification off; handshake signatures
//! are always verified. The private key file is written mode 0600 before the certificate.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::hex::hex;
use super::secret::sha256;

/// Why this node's TLS identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Lowercase hex SHA-256 of a certificate's DER bytes.
pub fn fingerprint(cert: &[u8]) -> String {
    hex(&sha256(cert))
}

/// This node's certificate and key, made at first start under `dir`.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    key: Vec<u8>,
    pub fingerprint: String,
}

impl Identity {
    pub fn load_or_create(dir: &Path, host: &str) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (dir.join("cert.der"), dir.join("key.der"));
        let (cert, key) = match (std::fs::read(&cert_path), std::fs::read(&key_path)) {
            (Ok(c), Ok(k)) => (c, k),
            _ => {
                let names = vec![
                    host.to_string(),
                    format!("{host}.local"),
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                    "::1".to_string(),
                ];
                let made = rcgen::generate_simple_self_signed(names)?;
                let cert = made.cert.der().to_vec();
                let key = made.signing_key.serialize_der();
                std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                // The key first, private to its owner, then the certificate that names it.
                write_private(&key_path, &key).map_err(io_error(&key_path))?;
                std::fs::write(&cert_path, &cert).map_err(io_error(&cert_path))?;
                tracing::info!(fingerprint = %fingerprint(&cert), "made a TLS certificate");
                (cert, key)
            }
        };
        Ok(Self {
            fingerprint: fingerprint(&cert),
            cert: CertificateDer::from(cert),
            key,
        })
    }

    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Accepts exactly the certificate whose fingerprint is pinned, or, with no pin yet, any
/// certificate (trust on first use: the caller pins what it saw). Handshake signatures are
/// always verified, so the peer must hold the certificate's key.
#[derive(Debug)]
pub struct PinVerifier {
    pin: Option<String>,
    seen: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    pub fn new(pin: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            pin,
            seen: Mutex::new(None),
            provider: provider(),
        })
    }

    /// The fingerprint the peer presented, once a handshake got that far.
    pub fn seen(&self) -> Option<String> {
        self.seen.lock().unwrap().clone()
    }

    pub fn client_config(self: &Arc<Self>) -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth()
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        *self.seen.lock().unwrap() = Some(got.clone());
        match &self.pin {
            Some(pin) if *pin != got => Err(rustls::Error::General(format!(
                "the peer's certificate {got} is not the pinned {pin}"
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
