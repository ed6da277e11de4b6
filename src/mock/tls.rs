//! The mock's certificate authority, server certificate, push (client) certificates and rustls set-up.

use super::environment::Environment;
use super::error::{Kind, MockError};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;
use std::sync::Arc;

/// OID of the X.500 `UID` attribute (userId), where Apple puts the bundle id of a push certificate.
const UID_OID: [u64; 7] = [0, 9, 2342, 19200300, 100, 1, 1];

/// Apple's push-certificate extensions (Apple WWDR CPS): the certificate may connect to the
/// sandbox (development) environment, to production, and the topics it may push to.
const SANDBOX_OID: [u64; 8] = [1, 2, 840, 113635, 100, 6, 3, 1];
const PRODUCTION_OID: [u64; 8] = [1, 2, 840, 113635, 100, 6, 3, 2];
const TOPICS_OID: [u64; 8] = [1, 2, 840, 113635, 100, 6, 3, 6];

/// Host names (and addresses) the generated server certificate is valid for.
pub(crate) const SERVER_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "api.push.apple.com",
    "api.sandbox.push.apple.com",
    "api.development.push.apple.com",
    "api-manage-broadcast.push.apple.com",
    "api-manage-broadcast.sandbox.push.apple.com",
];

fn cert_err(e: impl std::fmt::Display) -> MockError {
    MockError::new(Kind::Certificate, e.to_string())
}

/// The generated CA: signs the server certificate and the push certificates.
pub(crate) struct Authority {
    pub(crate) ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    pub(crate) fn generate() -> Result<Self, MockError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "herald mock APNs CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "herald mock");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Authority {
            ca_pem: cert.pem(),
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A server certificate for [`SERVER_NAMES`] plus `extra`, and its private key. Its common
    /// name is the host of `environment`, as Apple's certificate for that host names it (the
    /// names clients check are the SANs, which cover both).
    pub(crate) fn server_cert(
        &self,
        extra: &[String],
        environment: Environment,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), MockError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        names.extend(extra.iter().cloned());
        let mut params = CertificateParams::new(names).map_err(cert_err)?;
        let host = match environment {
            Environment::Production => "api.push.apple.com",
            Environment::Sandbox => "api.sandbox.push.apple.com",
        };
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        let der = PrivatePkcs8KeyDer::from(key.serialize_der());
        Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(der)))
    }

    /// A push certificate for `bundle_id`, shaped like Apple's (subject UID = bundle id, and
    /// the extensions `options` asks for).
    pub(crate) fn push_certificate(
        &self,
        bundle_id: &str,
        options: &PushCertificateOptions,
    ) -> Result<PushCertificate, MockError> {
        if bundle_id.is_empty() {
            return Err(cert_err("empty bundle id"));
        }
        let topics = match &options.topics {
            Topics::Default => Some(vec![
                bundle_id.to_owned(),
                format!("{bundle_id}.voip"),
                format!("{bundle_id}.complication"),
            ]),
            Topics::Listed(list) => Some(list.clone()),
            Topics::Absent => None,
        };
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params
            .distinguished_name
            .push(DnType::CustomDnType(UID_OID.to_vec()), bundle_id);
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Apple Push Services: {bundle_id}"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "herald mock");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Apple's environment extensions carry an ASN.1 NULL.
        if options.sandbox {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &SANDBOX_OID,
                    vec![0x05, 0x00],
                ));
        }
        if options.production {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &PRODUCTION_OID,
                    vec![0x05, 0x00],
                ));
        }
        if let Some(topics) = &topics {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &TOPICS_OID,
                    encode_topics(bundle_id, topics),
                ));
        }
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(PushCertificate {
            sandbox: options.sandbox,
            production: options.production,
            topics,
            bundle_id: bundle_id.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            ca_der: self.ca_der.to_vec(),
        })
    }

    pub(crate) fn server_config(
        &self,
        extra_names: &[String],
        extra_client_cas: &[String],
        environment: Environment,
    ) -> Result<rustls::ServerConfig, MockError> {
        let tls_err = |e: &dyn std::fmt::Display| MockError::new(Kind::Tls, e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(|e| tls_err(&e))?;
        for pem in extra_client_cas {
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let der = der.map_err(|e| tls_err(&e))?;
                roots.add(der).map_err(|e| tls_err(&e))?;
            }
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| tls_err(&e))?;
        let (cert, key) = self.server_cert(extra_names, environment)?;
        let chain = vec![cert, self.ca_der.clone()];
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls_err(&e))?;
        // Offer h2 only. A client that sends no ALPN at all (aioapns) is still served, as h2.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// DER: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Apple's topics extension: `SEQUENCE { UTF8String topic, SEQUENCE { UTF8String kind }, ... }`,
/// each topic followed by its kind (`app` for the bundle id, `voip`, `complication`, ...), as
/// OpenSSL shows in an Apple push certificate and as Pushy and others read it.
fn encode_topics(bundle_id: &str, topics: &[String]) -> Vec<u8> {
    const UTF8_STRING: u8 = 0x0c;
    const SEQUENCE: u8 = 0x30;
    let mut items = Vec::new();
    for topic in topics {
        let kind = if topic == bundle_id {
            "app"
        } else {
            topic
                .strip_prefix(bundle_id)
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or("topic")
        };
        items.extend(der(UTF8_STRING, topic.as_bytes()));
        items.extend(der(SEQUENCE, &der(UTF8_STRING, kind.as_bytes())));
    }
    der(SEQUENCE, &items)
}

/// The topics listed in a DER certificate's topics extension, if it has one (the mock's own
/// reading; the client has its own). Strings directly in the sequence are topics, nested kind
/// markers are skipped; a flat list of strings is read as topic, kind, topic, kind...
pub(crate) fn certificate_topics(der_cert: &[u8]) -> Option<Vec<String>> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, cert) = x509_parser::parse_x509_certificate(der_cert).ok()?;
    let oid = x509_parser::der_parser::oid::Oid::from(&TOPICS_OID).ok()?;
    let ext = cert.extensions().iter().find(|e| e.oid == oid)?;
    let (_, seq) = x509_parser::der_parser::parse_der(ext.value).ok()?;
    let BerObjectContent::Sequence(items) = &seq.content else {
        return Some(Vec::new());
    };
    let strings: Vec<Option<String>> = items
        .iter()
        .map(|i| i.as_str().ok().map(str::to_owned))
        .collect();
    let topics = if strings.iter().all(Option::is_some) {
        strings.into_iter().step_by(2).flatten().collect()
    } else {
        strings.into_iter().flatten().collect()
    };
    Some(topics)
}

/// Which of Apple's extensions a push certificate issued by the mock carries: the environments
/// it may connect to (sandbox `1.2.840.113635.100.6.3.1`, production `…3.2`) and the topics it
/// may push to (`…3.6`). The default is Apple's universal certificate: both environments, and
/// the bundle id with its `.voip` and `.complication` topics.
///
/// ```
/// use herald::mock::PushCertificateOptions;
/// let sandbox_only = PushCertificateOptions::sandbox_only();
/// let watch = PushCertificateOptions::universal().topics(["com.example.app", "com.example.app.complication"]);
/// let legacy = PushCertificateOptions::production_only().without_topics();
/// # let _ = (sandbox_only, watch, legacy);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCertificateOptions {
    sandbox: bool,
    production: bool,
    topics: Topics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Topics {
    Default,
    Listed(Vec<String>),
    Absent,
}

impl Default for PushCertificateOptions {
    fn default() -> Self {
        PushCertificateOptions::universal()
    }
}

impl PushCertificateOptions {
    /// Sandbox and production, default topics (Apple's "Sandbox & Production" certificate).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let options = PushCertificateOptions::universal();
    /// assert_eq!(options, PushCertificateOptions::default());
    /// let cert = mock.issue_push_certificate_with("com.example.app", &options)?;
    /// assert!(cert.sandbox() && cert.production());
    /// assert_eq!(
    ///     cert.topics().unwrap(),
    ///     ["com.example.app", "com.example.app.voip", "com.example.app.complication"]
    /// );
    /// # Ok(()) }
    /// ```
    pub fn universal() -> Self {
        PushCertificateOptions {
            sandbox: true,
            production: true,
            topics: Topics::Default,
        }
    }

    /// Only the sandbox environment (an "Apple Development IOS Push Services" certificate).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let options = PushCertificateOptions::sandbox_only();
    /// let cert = mock.issue_push_certificate_with("com.example.app", &options)?;
    /// assert!(cert.sandbox() && !cert.production());
    /// assert_eq!(cert.topics().unwrap().len(), 3); // the default topics
    /// # Ok(()) }
    /// ```
    pub fn sandbox_only() -> Self {
        PushCertificateOptions {
            production: false,
            ..Self::universal()
        }
    }

    /// Only the production environment.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let options = PushCertificateOptions::production_only();
    /// let cert = mock.issue_push_certificate_with("com.example.app", &options)?;
    /// assert!(cert.production() && !cert.sandbox());
    /// assert_eq!(cert.topics().unwrap().len(), 3); // the default topics
    /// # Ok(()) }
    /// ```
    pub fn production_only() -> Self {
        PushCertificateOptions {
            sandbox: false,
            ..Self::universal()
        }
    }

    /// Neither environment extension (a certificate that says nothing about its environment).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Certificate, Endpoint, Payload, Push};
    /// use herald::mock::{Environment, MockApns, PushCertificateOptions};
    /// let options = PushCertificateOptions::no_environment();
    /// // Not judged on its environment: accepted by a production mock as by the sandbox.
    /// for environment in [Environment::Sandbox, Environment::Production] {
    ///     let mock = MockApns::builder().environment(environment).start().await?;
    ///     mock.register_device(&"a1".repeat(32), "com.example.app");
    ///     let cert = mock.issue_push_certificate_with("com.example.app", &options)?;
    ///     assert!(!cert.sandbox() && !cert.production());
    ///     let client = ApnsClient::builder()
    ///         .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///         .certificate(Certificate::from_pem(cert.cert_pem(), cert.key_pem())?)
    ///         .build()?;
    ///     let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    ///     assert!(client.send(push).await.is_accepted());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn no_environment() -> Self {
        PushCertificateOptions {
            sandbox: false,
            production: false,
            ..Self::universal()
        }
    }

    /// Lists exactly these topics in the topics extension.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Certificate, Endpoint, Payload, Push, PushType};
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    /// // A certificate for the VoIP topic only.
    /// let options = PushCertificateOptions::universal().topics(["com.example.app.voip"]);
    /// let cert = mock.issue_push_certificate_with("com.example.app", &options)?;
    /// assert_eq!(cert.topics().unwrap(), ["com.example.app.voip"]);
    /// let read = Certificate::from_pem(cert.cert_pem(), cert.key_pem())?;
    /// assert!(read.covers_topic("com.example.app.voip"));
    /// assert!(!read.covers_topic("com.example.app")); // herald will not send alerts with it
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .certificate(read)
    ///     .build()?;
    /// let call = Push::builder("a1".repeat(32), "com.example.app")
    ///     .push_type(PushType::Voip)
    ///     .payload(&Payload::alert("Incoming call"))?
    ///     .build()?;
    /// assert!(client.send(call).await.is_accepted()); // to com.example.app.voip
    /// # Ok(()) }
    /// ```
    pub fn topics(mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.topics = Topics::Listed(topics.into_iter().map(Into::into).collect());
        self
    }

    /// No topics extension (an older certificate: only the bundle id, from the subject UID).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let options = PushCertificateOptions::production_only().without_topics();
    /// let cert = mock.issue_push_certificate_with("com.example.app", &options)?;
    /// assert_eq!(cert.topics(), None);
    /// assert_eq!(cert.bundle_id(), "com.example.app");
    /// assert!(cert.production() && !cert.sandbox()); // the environments are kept
    /// # Ok(()) }
    /// ```
    pub fn without_topics(mut self) -> Self {
        self.topics = Topics::Absent;
        self
    }
}

/// The environments a DER certificate's Apple extensions list (sandbox `…6.3.1`, production
/// `…6.3.2`): empty when it has neither (or cannot be read).
pub(crate) fn certificate_environments(der: &[u8]) -> Vec<Environment> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    [
        (SANDBOX_OID, Environment::Sandbox),
        (PRODUCTION_OID, Environment::Production),
    ]
    .into_iter()
    .filter(|(oid, _)| {
        x509_parser::der_parser::oid::Oid::from(oid)
            .is_ok_and(|oid| cert.extensions().iter().any(|e| e.oid == oid))
    })
    .map(|(_, env)| env)
    .collect()
}

/// The subject UID (bundle id) of a DER certificate, if it has one.
pub(crate) fn certificate_uid(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let oid = x509_parser::der_parser::oid::Oid::from(&UID_OID).ok()?;
    let attr = cert.subject().iter_by_oid(&oid).next()?;
    attr.as_str().ok().map(str::to_owned)
}

/// A TLS client certificate for certificate-based authentication, issued by the mock's CA with the
/// bundle id as subject UID, the way Apple issues push certificates.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mock = herald::mock::MockApns::start().await.unwrap();
/// let cert = mock.issue_push_certificate("com.example.app").unwrap();
/// assert_eq!(cert.bundle_id(), "com.example.app");
/// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(cert.key_pem().contains("PRIVATE KEY"));
/// assert!(cert.pem_bundle().contains("CERTIFICATE") && cert.pem_bundle().contains("PRIVATE KEY"));
/// # }
/// ```
#[derive(Clone)]
pub struct PushCertificate {
    sandbox: bool,
    production: bool,
    topics: Option<Vec<String>>,
    bundle_id: String,
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    ca_der: Vec<u8>,
}

impl std::fmt::Debug for PushCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushCertificate")
            .field("bundle_id", &self.bundle_id)
            .field("sandbox", &self.sandbox)
            .field("production", &self.production)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl PushCertificate {
    /// The bundle id (the certificate's subject UID).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::Certificate;
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// assert_eq!(cert.bundle_id(), "com.example.app");
    /// // It is in the certificate, where a client reads it.
    /// let read = Certificate::from_pem(cert.cert_pem(), cert.key_pem())?;
    /// assert_eq!(read.bundle_id(), Some("com.example.app"));
    /// # Ok(()) }
    /// ```
    pub fn bundle_id(&self) -> &str {
        &self.bundle_id
    }

    /// Whether it carries the sandbox extension (`1.2.840.113635.100.6.3.1`).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{Certificate, Environment};
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// assert!(cert.sandbox());
    /// let read = Certificate::from_pem(cert.cert_pem(), cert.key_pem())?;
    /// assert!(read.environments().contains(&Environment::Sandbox)); // the extension is there
    /// let options = PushCertificateOptions::production_only();
    /// assert!(!mock.issue_push_certificate_with("com.example.app", &options)?.sandbox());
    /// # Ok(()) }
    /// ```
    pub fn sandbox(&self) -> bool {
        self.sandbox
    }

    /// Whether it carries the production extension (`1.2.840.113635.100.6.3.2`).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{Certificate, Environment};
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// assert!(cert.production());
    /// let read = Certificate::from_pem(cert.cert_pem(), cert.key_pem())?;
    /// assert!(read.environments().contains(&Environment::Production)); // the extension is there
    /// let options = PushCertificateOptions::sandbox_only();
    /// assert!(!mock.issue_push_certificate_with("com.example.app", &options)?.production());
    /// # Ok(()) }
    /// ```
    pub fn production(&self) -> bool {
        self.production
    }

    /// The topics of its topics extension (`1.2.840.113635.100.6.3.6`), if it has one.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::Certificate;
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// let topics = ["com.example.app", "com.example.app.voip", "com.example.app.complication"];
    /// assert_eq!(cert.topics().unwrap(), topics);
    /// // A client reads the same list from the certificate.
    /// let read = Certificate::from_pem(cert.cert_pem(), cert.key_pem())?;
    /// assert_eq!(read.topics().unwrap(), topics);
    /// let options = PushCertificateOptions::universal().without_topics();
    /// assert_eq!(mock.issue_push_certificate_with("com.example.app", &options)?.topics(), None);
    /// # Ok(()) }
    /// ```
    pub fn topics(&self) -> Option<&[String]> {
        self.topics.as_deref()
    }

    /// The certificate, PEM.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Certificate, Endpoint, Payload, Push};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// assert_eq!(cert.cert_pem().matches("BEGIN").count(), 1); // the certificate alone
    /// // Certificate-based authentication with it and its key.
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .certificate(Certificate::from_pem(cert.cert_pem(), cert.key_pem())?)
    ///     .build()?;
    /// let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// assert!(client.send(push).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM (P-256).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::Certificate;
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// assert!(cert.key_pem().starts_with("-----BEGIN PRIVATE KEY-----")); // PKCS#8
    /// assert_eq!(cert.key_pem().matches("BEGIN").count(), 1); // the key alone
    /// // The key that goes with `cert_pem`.
    /// assert!(Certificate::from_pem(cert.cert_pem(), cert.key_pem()).is_ok());
    /// # Ok(()) }
    /// ```
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Certificate then key in one PEM text (what `aioapns`' `client_cert` and `curl --cert` read).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// let bundle = cert.pem_bundle();
    /// assert_eq!(bundle, format!("{}{}", cert.cert_pem(), cert.key_pem()));
    /// assert!(bundle.find("CERTIFICATE").unwrap() < bundle.find("PRIVATE KEY").unwrap());
    /// # Ok(()) }
    /// ```
    pub fn pem_bundle(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }

    /// The certificate (with the mock's CA after it) and key as a PKCS#12 (`.p12`) archive
    /// protected by `password`, the way Keychain Access exports a push certificate. Encrypted with
    /// PBES2 (PBKDF2-HMAC-SHA256 + AES-256), MAC HMAC-SHA256, as OpenSSL 3 writes them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mock = herald::mock::MockApns::start().await.unwrap();
    /// let p12 = mock.issue_push_certificate("com.example.app").unwrap().to_p12("secret").unwrap();
    /// assert!(!p12.is_empty());
    /// # }
    /// ```
    pub fn to_p12(&self, password: &str) -> Result<Vec<u8>, MockError> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let err = |e: p12_keystore::error::Error| cert_err(format!("PKCS#12: {e}"));
        let key = PrivateKey::from_der(&self.key_der).map_err(err)?;
        let certs = vec![
            Certificate::from_der(&self.cert_der).map_err(err)?,
            Certificate::from_der(&self.ca_der).map_err(err)?,
        ];
        let local_key_id =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der);
        let chain = PrivateKeyChain::new(local_key_id.as_ref().to_vec(), key, certs);
        let mut store = KeyStore::new();
        store.add_entry(&self.bundle_id, KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(password).write().map_err(err)
    }

    /// Writes [`to_p12`](Self::to_p12) to `path`.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{Certificate, ErrorKind};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("push.p12");
    /// cert.write_p12(&path, "secret")?; // for another process, as Keychain Access exports it
    /// let read = Certificate::from_p12_file(&path, "secret")?;
    /// assert_eq!(read.bundle_id(), Some("com.example.app"));
    /// let wrong = Certificate::from_p12_file(&path, "guess").unwrap_err();
    /// assert_eq!(wrong.kind(), ErrorKind::WrongPassword);
    /// # Ok(()) }
    /// ```
    pub fn write_p12(&self, path: impl AsRef<Path>, password: &str) -> Result<(), MockError> {
        std::fs::write(path, self.to_p12(password)?).map_err(|e| MockError::io("writing .p12", e))
    }

    /// Writes [`pem_bundle`](Self::pem_bundle) to `path`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("push.pem");
    /// cert.write_pem_bundle(&path)?; // for `curl --cert`, aioapns' `client_cert`, ...
    /// assert_eq!(std::fs::read_to_string(&path)?, cert.pem_bundle());
    /// assert!(cert.write_pem_bundle(dir.path().join("no/such/dir.pem")).unwrap_err().is_io());
    /// # Ok(()) }
    /// ```
    pub fn write_pem_bundle(&self, path: impl AsRef<Path>) -> Result<(), MockError> {
        std::fs::write(path, self.pem_bundle()).map_err(|e| MockError::io("writing PEM bundle", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_certificate_carries_bundle_id_as_uid() {
        let ca = Authority::generate().unwrap();
        let cert = ca
            .push_certificate("com.example.app", &PushCertificateOptions::universal())
            .unwrap();
        let der = CertificateDer::from_pem_slice(cert.cert_pem().as_bytes()).unwrap();
        assert_eq!(certificate_uid(&der).as_deref(), Some("com.example.app"));
    }

    #[test]
    fn topics_extension_round_trips_in_apples_shape() {
        let ca = Authority::generate().unwrap();
        let options = PushCertificateOptions::sandbox_only()
            .topics(["com.example.app", "com.example.app.voip"]);
        let cert = ca.push_certificate("com.example.app", &options).unwrap();
        let der = CertificateDer::from_pem_slice(cert.cert_pem().as_bytes()).unwrap();
        assert_eq!(
            certificate_topics(&der),
            Some(vec![
                "com.example.app".to_owned(),
                "com.example.app.voip".to_owned()
            ])
        );
        // SEQUENCE { UTF8String "a.b", SEQUENCE { UTF8String "app" } }
        assert_eq!(
            encode_topics("a.b", &["a.b".to_owned()]),
            [
                0x30, 0x0c, 0x0c, 0x03, b'a', b'.', b'b', 0x30, 0x05, 0x0c, 0x03, b'a', b'p', b'p'
            ]
        );
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let oids: Vec<String> = parsed
            .extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect();
        assert!(
            oids.contains(&"1.2.840.113635.100.6.3.1".to_owned()),
            "{oids:?}"
        );
        assert!(
            !oids.contains(&"1.2.840.113635.100.6.3.2".to_owned()),
            "{oids:?}"
        );
        let legacy = ca
            .push_certificate(
                "com.example.app",
                &PushCertificateOptions::universal().without_topics(),
            )
            .unwrap();
        let der = CertificateDer::from_pem_slice(legacy.cert_pem().as_bytes()).unwrap();
        assert_eq!(certificate_topics(&der), None);
    }
}
