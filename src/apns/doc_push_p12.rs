// Set-up shared by the rustdoc examples of `herald::apns` that read a `.p12` push certificate.
// Not a module of the crate (nothing declares it, nothing compiles it into herald): a doctest
// takes it in one hidden line, as an expression that evaluates to the bytes of a `.p12` file,
// whose password is "pw":
//
//     # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
//
// (The path is absolute so that the examples stay in rustdoc's merged doctest binary: there a
// path relative to this directory does not resolve.)
//
// The certificate is shaped like one Apple issues (what `Certificate` reads from it, see
// src/apns/auth.rs): subject `UID=com.example.app, CN=Apple Push Services: com.example.app,
// OU=TEAM123456, O=Example Inc., C=US`; the sandbox and production extensions; the topics
// extension listing `com.example.app` and `com.example.app.voip`; expiring 90 days from now. It
// is packaged with its private key as Keychain Access exports one. Made with `rcgen` (a
// dev-dependency) and `p12-keystore` (a dependency of the `apns` feature).
{
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let name = &mut params.distinguished_name;
    name.push(rcgen::DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]), "com.example.app");
    name.push(rcgen::DnType::CommonName, "Apple Push Services: com.example.app");
    name.push(rcgen::DnType::OrganizationalUnitName, "TEAM123456");
    name.push(rcgen::DnType::OrganizationName, "Example Inc.");
    name.push(rcgen::DnType::CountryName, "US");
    params.not_after = (std::time::SystemTime::now() + std::time::Duration::from_secs(90 * 86400)).into();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    // Apple's extensions, 1.2.840.113635.100.6.3.n: 1 sandbox and 2 production (each an ASN.1
    // NULL), 6 topics (SEQUENCE { UTF8String topic, SEQUENCE { UTF8String kind }, ... }).
    let apple = |n, value| rcgen::CustomExtension::from_oid_content(&[1, 2, 840, 113635, 100, 6, 3, n], value);
    let der = |tag: u8, body: &[u8]| [&[tag, body.len() as u8][..], body].concat();
    let topic = |t: &str, kind: &str| [der(0x0c, t.as_bytes()), der(0x30, &der(0x0c, kind.as_bytes()))].concat();
    let topics = der(0x30, &[topic("com.example.app", "app"), topic("com.example.app.voip", "voip")].concat());
    params.custom_extensions = vec![apple(1, vec![0x05, 0x00]), apple(2, vec![0x05, 0x00]), apple(6, topics)];
    let cert = params.self_signed(&key).unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(
        b"push".to_vec(),
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("Apple Push Services: com.example.app", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    // 2048 iterations, as `openssl pkcs12 -export` (p12-keystore's 10,000 are slow in a debug build).
    store.writer("pw").encryption_iterations(2048).mac_iterations(2048).write().unwrap()
}
