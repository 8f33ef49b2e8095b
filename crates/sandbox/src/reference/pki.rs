//! The reference cluster's PKI: one CA and every certificate and key the control plane, the
//! node agent and the clients need, made fresh for each instance (ECDSA P-256). The keys live
//! only in the instance's state folder and go with it.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("making the reference cluster's certificates: {0}")]
pub struct PkiError(#[from] rcgen::Error);

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// The instance's CA, which signs everything else.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
}

impl Authority {
    pub fn new(name: &str) -> Result<Authority, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A client certificate: the API server reads CN as the user name and each O as a group.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<KeyedCert, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A serving certificate for these DNS names and addresses.
    pub fn server(
        &self,
        name: &str,
        dns: &[&str],
        addresses: &[IpAddr],
    ) -> Result<KeyedCert, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        for d in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*d).try_into()?));
        }
        for a in addresses {
            params.subject_alt_names.push(SanType::IpAddress(*a));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<KeyedCert, PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(KeyedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }
}

/// A bare key pair (the ServiceAccount token signing key): private and public PEM.
pub fn signing_key() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn certificates_chain_to_the_authority_and_carry_their_names() {
        let ca = Authority::new("test-ca").unwrap();
        let server = ca
            .server("kubelet", &["localhost"], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let client = ca.client("system:node:n1", &["system:nodes"]).unwrap();
        // rustls accepts the server certificate for 127.0.0.1 and "localhost" under this CA.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der.clone().into()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            rustls::crypto::ring::default_provider().into(),
        )
        .build()
        .unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let name = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &server.cert_der.clone().into(),
                    &[],
                    &name,
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap();
        }
        let other = rustls::pki_types::ServerName::try_from("example.org").unwrap();
        assert!(verifier
            .verify_server_cert(
                &server.cert_der.clone().into(),
                &[],
                &other,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .is_err());
        assert!(client.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(client.key_pem.contains("PRIVATE KEY"));
        let (private, public) = signing_key().unwrap();
        assert!(private.contains("PRIVATE KEY") && public.contains("PUBLIC KEY"));
    }
}
