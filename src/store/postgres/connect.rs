//! Reaching PostgreSQL: the URL (checked, described without its password), TLS with rustls
//! (`sslmode`, `sslrootcert`), and the connection pool.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::StoreConfig;
use crate::store::StoreError;

/// `sslmode`, with libpq's meaning: `prefer` (the default) and `require` encrypt without
/// checking the certificate (unless `sslrootcert` is given, which makes `require` check the
/// chain, as libpq does); `verify-ca` checks the chain; `verify-full` the chain and the host
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The parts of a `postgres://` URL bizrelay needs, checked.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
    pub root_cert: Option<String>,
    /// For messages: database, host and port, user; never the password.
    pub describe: String,
}

/// What a store URL names, for messages (never the password).
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let db = u.path().trim_start_matches('/');
            let user = if u.username().is_empty() {
                String::new()
            } else {
                format!(" as {}", u.username())
            };
            format!(
                "the PostgreSQL database `{}` on {}:{}{user}",
                if db.is_empty() { "(default)" } else { db },
                u.host_str().unwrap_or("localhost"),
                u.port().unwrap_or(5432),
            )
        }
        Err(_) => "the PostgreSQL store (store.url is not a valid URL)".to_string(),
    }
}

/// Checks a store URL; the error says what is wrong without quoting it.
pub fn parse(url: &str) -> Result<Target, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err("must start with postgres:// or postgresql://".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("names no host (postgres://user@host:5432/database)".into());
    }
    if u.path().trim_start_matches('/').is_empty() {
        return Err("names no database (postgres://user@host:5432/database)".into());
    }
    // sslmode and sslrootcert are ours to interpret (tokio-postgres knows fewer modes).
    let mut tls = Tls::Prefer;
    let mut root_cert = None;
    let mut rest: Vec<(String, String)> = Vec::new();
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                tls = match v.as_ref() {
                    "disable" => Tls::Disable,
                    "allow" | "prefer" => Tls::Prefer,
                    "require" => Tls::Require,
                    "verify-ca" => Tls::VerifyCa,
                    "verify-full" => Tls::VerifyFull,
                    _ => {
                        return Err(
                            "sslmode must be disable, prefer, require, verify-ca or verify-full"
                                .into(),
                        );
                    }
                }
            }
            "sslrootcert" => root_cert = Some(v.into_owned()),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    u.set_query(None);
    if !rest.is_empty() {
        u.query_pairs_mut().extend_pairs(rest);
        // Form encoding writes a space as `+`, which libpq-style parsers (tokio-postgres)
        // take literally; a literal `+` is `%2B` by then, so this swap is exact.
        let query = u.query().map(|q| q.replace('+', "%20"));
        u.set_query(query.as_deref());
    }
    let mut config =
        tokio_postgres::Config::from_str(u.as_str()).map_err(|e| format!("cannot be used: {e}"))?;
    config.ssl_mode(match tls {
        Tls::Disable => tokio_postgres::config::SslMode::Disable,
        Tls::Prefer => tokio_postgres::config::SslMode::Prefer,
        Tls::Require | Tls::VerifyCa | Tls::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    config.application_name("bizrelay");
    Ok(Target {
        config,
        tls,
        root_cert,
        describe: describe_url(url),
    })
}

fn roots_from(path: &str) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    Ok(roots)
}

fn rustls_config(tls: Tls, root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use std::sync::Arc;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = matches!(
        (tls, root_cert),
        (Tls::VerifyCa | Tls::VerifyFull, _) | (Tls::Require, Some(_))
    );
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if !check {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::EncryptOnly(provider)))
            .with_no_client_auth());
    }
    let inner: Arc<dyn rustls::client::danger::ServerCertVerifier> = match root_cert {
        Some(path) => rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots_from(path)?),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| format!("sslrootcert {path}: {e}"))?,
        None => Arc::new(
            rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
                .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?,
        ),
    };
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if tls == Tls::VerifyFull {
        inner
    } else {
        Arc::new(verify::ChainOnly(inner))
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The certificate checks libpq's modes below `verify-full` ask for.
mod verify {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

    /// `prefer`/`require` without a root certificate: encrypted, the certificate unchecked
    /// (the handshake's signatures still are).
    #[derive(Debug)]
    pub struct EncryptOnly(pub Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for EncryptOnly {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
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
        ) -> Result<HandshakeSignatureValid, Error> {
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

    /// `verify-ca`: the chain must be trusted; the host name may differ.
    #[derive(Debug)]
    pub struct ChainOnly(pub Arc<dyn ServerCertVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
}

/// A pool of connections to the target. Each connection bounds statements and idle
/// transactions on the server too, so a stalled client can never hold locks for long.
pub fn pool(target: &Target, cfg: &StoreConfig) -> Result<Pool, StoreError> {
    let mut config = target.config.clone();
    config.options(session_options(
        config.get_options(),
        cfg.commit_timeout.as_millis().max(1000),
    ));
    config.connect_timeout(cfg.commit_timeout);
    let tls = rustls_config(target.tls, target.root_cert.as_deref())
        .map_err(|e| StoreError::Refused(format!("{}: {e}", target.describe)))?;
    let manager = Manager::from_config(
        config,
        MakeRustlsConnect::new(tls),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(cfg.pool_size.max(2))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(cfg.commit_timeout))
        .create_timeout(Some(cfg.commit_timeout))
        .build()
        .map_err(|e| StoreError::Refused(format!("{}: {e}", target.describe)))
}

/// The URL's own `options` (such as `-c search_path=bizrelay`) followed by the timeouts.
fn session_options(from_url: Option<&str>, timeout_ms: u128) -> String {
    let ours = format!(
        "-c statement_timeout={timeout_ms} -c idle_in_transaction_session_timeout={}",
        timeout_ms * 2
    );
    match from_url.map(str::trim) {
        Some(given) if !given.is_empty() => format!("{given} {ours}"),
        _ => ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_urls_own_session_options_are_kept() {
        let t = parse("postgres://h/db?options=-c%20search_path%3Dbizrelay").unwrap();
        let options = session_options(t.config.get_options(), 5000);
        assert!(options.starts_with("-c search_path=bizrelay "), "{options}");
        assert!(options.contains("statement_timeout=5000"), "{options}");
        assert_eq!(
            session_options(None, 1000),
            "-c statement_timeout=1000 -c idle_in_transaction_session_timeout=2000"
        );
    }

    #[test]
    fn urls_are_checked_and_described_without_passwords() {
        let t = parse("postgres://relay:s3cret@db.internal:6543/bizrelay?sslmode=require").unwrap();
        assert_eq!(t.tls, Tls::Require);
        assert_eq!(parse("postgres://h/db").unwrap().tls, Tls::Prefer);
        assert_eq!(
            parse("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem")
                .unwrap()
                .root_cert
                .as_deref(),
            Some("/ca.pem")
        );
        assert_eq!(
            t.describe,
            "the PostgreSQL database `bizrelay` on db.internal:6543 as relay"
        );
        assert!(!t.describe.contains("s3cret"));
        assert_eq!(
            parse("postgresql://h/db?sslmode=disable").unwrap().tls,
            Tls::Disable
        );
        for (bad, want) in [
            ("mysql://h/db", "postgres://"),
            ("postgres:///db", "no host"),
            ("postgres://h", "no database"),
            ("postgres://h/db?sslmode=sometimes", "sslmode"),
            ("not a url", "not a valid URL"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let e = parse("postgres://u:hunter2@/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
