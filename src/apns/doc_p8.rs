// Set-up shared by the rustdoc examples of `herald::apns` that read a `.p8` signing key. Not
// a module of the crate (nothing declares it, nothing compiles it into herald): a doctest takes
// it in one hidden line, as an expression that evaluates to a temporary directory holding
// `AuthKey_ABC1234567.p8`, a fresh P-256 key in the PKCS#8 PEM form Apple's downloads have:
//
//     # let tmp: tempfile::TempDir = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_p8.rs"));
//
// (The path is absolute for the reason `doc_push_p12.rs` gives.) Made with `ring` and `base64`
// (dependencies of the `apns` feature) and `tempfile` (a dev-dependency).
{
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &ring::rand::SystemRandom::new())
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let p8 = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    std::fs::write(tmp.path().join("AuthKey_ABC1234567.p8"), p8).unwrap();
    tmp
}
