//! TLS to PostgreSQL, with libpq's `sslmode` names: the connection is encrypted wherever the
//! server offers TLS (`prefer`, the default), must be (`require`), or must be encrypted to a
//! server whose certificate chains to `sslrootcert` (or the system's roots) and names the host
//! (`verify-full`: the setting for `database.external`, e.g. Amazon RDS with its CA bundle).
//! `disable` turns TLS off. As in libpq, `prefer` and `require` without `sslrootcert` encrypt
//! without authenticating the server; with `sslrootcert` they verify it too.

use std::sync::Arc;

use postgres::config::SslMode;
use postgres::Client;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::StoreError;

/// What the URL asks for, with kenko's own parameters taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    pub mode: Mode,
    pub root_cert: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// Splits `sslmode` and `sslrootcert` off a `postgres://` URL (the driver knows neither
/// `verify-full` nor `sslrootcert`).
pub(crate) fn split(url: &str) -> Result<(String, Tls), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut tls = Tls {
        mode: Mode::Prefer,
        root_cert: None,
    };
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => {
                tls.mode = match v {
                    "disable" => Mode::Disable,
                    "prefer" | "allow" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-full" | "verify-ca" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other}: expected disable, prefer, require or verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" => tls.root_cert = Some(v.to_string()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, tls))
}

/// Connects as the URL's TLS settings say.
pub(crate) fn connect(url: &str) -> Result<Client, StoreError> {
    let open = |message: String| StoreError::Open {
        target: crate::redact_url(url),
        message,
    };
    let (plain_url, tls) = split(url).map_err(open)?;
    let mut config: postgres::Config = plain_url
        .parse()
        .map_err(|e: postgres::Error| open(e.to_string()))?;
    if tls.mode == Mode::Disable {
        config.ssl_mode(SslMode::Disable);
        return config
            .connect(postgres::NoTls)
            .map_err(|e| open(causes(&e)));
    }
    config.ssl_mode(match tls.mode {
        Mode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| open(e.to_string()))?;
    let verify = tls.mode == Mode::VerifyFull || tls.root_cert.is_some();
    let client_config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| open(format!("sslrootcert {path}: {e}")))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| open(format!("sslrootcert {path}: {e}")))?;
                if certs.is_empty() {
                    return Err(open(format!(
                        "sslrootcert {path}: no PEM certificate in it"
                    )));
                }
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| open(format!("sslrootcert {path}: {e}")))?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err(open(
                        "sslmode=verify-full: no system CA certificates found; set sslrootcert"
                            .into(),
                    ));
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unauthenticated(provider)))
            .with_no_client_auth()
    };
    config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(client_config))
        .map_err(|e| open(causes(&e)))
}

/// An error and its sources on one line (the driver's "error connecting" hides the TLS cause).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// `prefer`/`require` without a root certificate, as libpq: encryption against a passive
/// listener, no authentication of the server. The handshake's signatures are still checked
/// (the server holds the key of the certificate it sent).
#[derive(Debug)]
struct Unauthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kenkos_tls_parameters_leave_the_url_and_the_rest_stays() {
        let (url, tls) = split(
            "postgres://db:5432/kenko?sslmode=verify-full&application_name=kenko&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://db:5432/kenko?application_name=kenko");
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (url, tls) = split("postgres://db/kenko").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://db/kenko", Mode::Prefer)
        );
        assert!(split("postgres://db/kenko?sslmode=sometimes").is_err());
    }
}
