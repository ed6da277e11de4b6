//! A few seconds of fuzzing for every parser a remote peer feeds, as a normal test (CI's smoke
//! run): registration bodies (form and JSON), device tokens, forwarding headers, APNs responses
//! (status, headers and body over a real HTTP/2 + TLS socket), `.p8`, `.p12` and PEM inputs.
//! Arbitrary bytes, and near-valid inputs (real files with bytes flipped, bodies built from the
//! real field names). No input may panic; each yields a typed error. The long runs are the
//! libFuzzer targets in `fuzz/` (see `fuzz/README.md`); they share these entry points.
#![cfg(all(feature = "endpoint", feature = "mock"))]

mod fuzz_support;

use std::sync::OnceLock;

use base64::Engine as _;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// `(position, xor)` pairs applied to a valid input.
fn flips() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((any::<usize>(), 1u8..=255), 1..6)
}

fn mutate(valid: &[u8], flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut out = valid.to_vec();
    for (at, x) in flips {
        let i = at % out.len();
        out[i] ^= x;
    }
    if let Some(cut) = cut {
        out.truncate(cut % (out.len() + 1));
    }
    out
}

fn pem_armor(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s + &format!("-----END {label}-----\n")
}

/// A real push certificate (PEM, key PEM, DER, .p12 with password "pw") from the mock's CA.
fn credentials() -> &'static (String, String, Vec<u8>, Vec<u8>) {
    static C: OnceLock<(String, String, Vec<u8>, Vec<u8>)> = OnceLock::new();
    C.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mock = herald::mock::MockApns::start().await.unwrap();
            let cert = mock.issue_push_certificate("com.example.app").unwrap();
            use rustls_pki_types::pem::PemObject;
            let der = rustls_pki_types::CertificateDer::from_pem_slice(cert.cert_pem().as_bytes())
                .unwrap()
                .to_vec();
            (
                cert.cert_pem().to_owned(),
                cert.key_pem().to_owned(),
                der,
                cert.to_p12("pw").unwrap(),
            )
        })
    })
}

fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("newToken"),
        Just("oldToken"),
        Just("subject"),
        Just("topic"),
        Just("environment"),
        Just("new%54oken"),
        Just(""),
    ];
    let value = "[0-9a-fA-F%+=&;. zZ\\-]{0,90}";
    proptest::collection::vec((key, value), 0..6).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    })
}

fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("newToken"),
        Just("oldToken"),
        Just("subject"),
        Just("topic"),
        Just("environment"),
        Just("other"),
    ];
    let value = prop_oneof![
        "[0-9a-f]{0,80}".prop_map(|s| format!("{s:?}")),
        Just("null".to_owned()),
        Just("5".to_owned()),
        Just("[\"ab\"]".to_owned()),
        Just("{\"a\":1}".to_owned()),
        "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
    ];
    (proptest::collection::vec((key, value), 0..6), any::<bool>()).prop_map(|(pairs, truncate)| {
        let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        let mut s = format!("{{{}}}", fields.join(",")).into_bytes();
        if truncate {
            s.truncate(s.len() / 2); // may cut a UTF-8 sequence: so much the better
        }
        s
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn registration_any_bytes(data in bytes(600)) {
        fuzz_support::registration(&data);
    }

    #[test]
    fn registration_near_valid_forms(selector in prop_oneof![Just(0u8), Just(2u8), Just(0x80u8)], body in form_body()) {
        let mut data = vec![selector];
        data.extend(body);
        fuzz_support::registration(&data);
    }

    #[test]
    fn registration_near_valid_json(body in json_body()) {
        let mut data = vec![1u8];
        data.extend(body);
        fuzz_support::registration(&data);
    }

    #[test]
    fn device_tokens(data in bytes(300)) {
        fuzz_support::device_token(&data);
    }

    #[test]
    fn device_tokens_near_valid(token in "[0-9a-fA-FgG ]{0,220}", topic in "[a-z.\\-]{0,40}") {
        let mut data = vec![token.len() as u8];
        data.extend(token.bytes());
        data.extend(topic.bytes());
        fuzz_support::device_token(&data);
    }

    #[test]
    fn forwarding_headers(data in bytes(400)) {
        fuzz_support::forwarded(&data);
    }

    #[test]
    fn forwarding_headers_near_valid(
        x_forwarded in any::<bool>(),
        values in proptest::collection::vec("(for=)?\"?\\[?[0-9a-f:.]{0,20}\\]?(:[0-9]{1,5})?\"?(;proto=https)?(, ?)?|unknown|_hidden", 0..5),
    ) {
        let mut data = vec![u8::from(x_forwarded)];
        for v in values {
            data.push(v.len() as u8);
            data.extend(v.bytes());
        }
        fuzz_support::forwarded(&data);
    }

    #[test]
    fn p8_any_bytes(data in bytes(400)) {
        fuzz_support::p8(&data);
    }

    #[test]
    fn pem_any_bytes(data in bytes(600)) {
        fuzz_support::pem(&data);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn apns_responses_any_bytes(data in bytes(300)) {
        fuzz_support::apns_response(&data);
    }

    #[test]
    fn apns_responses_near_valid(
        status in prop_oneof![Just(200u16), Just(400), Just(403), Just(404), Just(410), Just(413), Just(429), Just(500), Just(503), 200u16..1000],
        reason in prop_oneof![Just("Unregistered".to_owned()), Just("ExpiredProviderToken".to_owned()), Just("BadDeviceToken".to_owned()), "\\PC{0,30}"],
        timestamp in prop_oneof![Just("1700000000000".to_owned()), Just("-1".to_owned()), Just("1e400".to_owned()), Just("18446744073709551615".to_owned()), Just("\"soon\"".to_owned()), Just("null".to_owned())],
        header in prop_oneof![Just(("apns-id", "not-a-uuid")), Just(("apns-unique-id", "")), Just(("retry-after", "99999999999999999999")), Just(("content-type", "text/html"))],
        truncate in any::<bool>(),
    ) {
        let mut body = format!("{{\"reason\":{reason:?},\"timestamp\":{timestamp}}}").into_bytes();
        if truncate {
            body.truncate(body.len() / 2);
        }
        let mut data = (status - 200).to_be_bytes().to_vec();
        data.push(1);
        data.push(header.0.len() as u8);
        data.extend(header.0.bytes());
        data.push(header.1.len() as u8);
        data.extend(header.1.bytes());
        data.extend(body);
        fuzz_support::apns_response(&data);
    }

    #[test]
    fn p8_near_valid(flips in flips(), cut in proptest::option::of(any::<usize>()), armor in any::<bool>()) {
        let (_, key_pem, _, _) = credentials();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let mutated = mutate(der.secret_pkcs8_der(), &flips, cut);
        if armor {
            fuzz_support::p8(pem_armor("PRIVATE KEY", &mutated).as_bytes());
        } else {
            fuzz_support::p8(&mutated);
        }
    }

    #[test]
    fn pem_near_valid(flips in flips(), cut in proptest::option::of(any::<usize>())) {
        let (_, key_pem, der, _) = credentials();
        let cert = pem_armor("CERTIFICATE", &mutate(der, &flips, cut));
        let mut data = vec![(cert.len() / 8 + 1).min(255) as u8];
        let cert = cert.as_bytes();
        let split = (data[0] as usize * 8).min(cert.len());
        // `pem` splits at byte 0 × 8: pad the certificate to land exactly there.
        data.extend(&cert[..split]);
        data.extend(std::iter::repeat_n(b'\n', data[0] as usize * 8 - split));
        data.extend(key_pem.bytes());
        fuzz_support::pem(&data);
    }
}

proptest! {
    // PKCS#12 key derivation is slow in a debug build: fewer cases.
    #![proptest_config(config(40))]

    #[test]
    fn p12_near_valid(flips in flips(), cut in proptest::option::of(any::<usize>()), right_password in any::<bool>()) {
        let (_, _, _, p12) = credentials();
        let mut data = if right_password { b"\x02pw".to_vec() } else { b"\x02px".to_vec() };
        data.extend(mutate(p12, &flips, cut));
        fuzz_support::p12(&data);
    }

    #[test]
    fn p12_any_bytes(data in bytes(600)) {
        fuzz_support::p12(&data);
    }
}
