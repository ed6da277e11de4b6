//! Provider keys and ES256 JWT verification, written from APNS.md section 3 (never shared with the
//! client: the mock is the check on it).

use super::environment::Environment;
use super::error::{Kind, MockError};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

/// A registered provider key: its team, its public point and its scope.
#[derive(Debug, Clone)]
pub(crate) struct KeyEntry {
    pub(crate) team_id: String,
    /// Uncompressed SEC1 point (65 bytes).
    pub(crate) public: Vec<u8>,
    /// Bundle ids this key may push to; `None` = any (a team-scoped key).
    pub(crate) topics: Option<Vec<String>>,
    /// The one environment this key is for; `None` = both (keys made before Apple's 2025 key
    /// scopes, and the default).
    pub(crate) environment: Option<Environment>,
    /// The key declared related to this one (Apple: a topic-specific key may have one).
    pub(crate) related: Option<String>,
}

impl KeyEntry {
    /// A key of `team_id` valid for every topic of the team in both environments.
    pub(crate) fn team_scoped(team_id: &str, public: Vec<u8>) -> Self {
        KeyEntry {
            team_id: team_id.to_owned(),
            public,
            topics: None,
            environment: None,
            related: None,
        }
    }

    /// Whether tokens of this key are valid in `environment`.
    pub(crate) fn serves(&self, environment: Environment) -> bool {
        self.environment.is_none_or(|e| e == environment)
    }
}

/// Reads a P-256 public key from: PEM `PUBLIC KEY` (SPKI), PEM `PRIVATE KEY` (PKCS#8, a `.p8` file),
/// the same two in DER, or a raw SEC1 point.
pub(crate) fn parse_public_key(input: &[u8]) -> Result<Vec<u8>, MockError> {
    let bad = |what: &str| MockError::new(Kind::BadKey, format!("not a P-256 key: {what}"));
    if let Ok(text) = std::str::from_utf8(input) {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            if let Ok(pk) = p256::PublicKey::from_public_key_pem(text) {
                return Ok(pk.to_encoded_point(false).as_bytes().to_vec());
            }
            if let Ok(sk) = p256::SecretKey::from_pkcs8_pem(text) {
                return Ok(sk.public_key().to_encoded_point(false).as_bytes().to_vec());
            }
            return Err(bad("PEM is neither SPKI nor PKCS#8 P-256"));
        }
    }
    if let Ok(pk) = p256::PublicKey::from_public_key_der(input) {
        return Ok(pk.to_encoded_point(false).as_bytes().to_vec());
    }
    if let Ok(sk) = p256::SecretKey::from_pkcs8_der(input) {
        return Ok(sk.public_key().to_encoded_point(false).as_bytes().to_vec());
    }
    if let Ok(pk) = p256::PublicKey::from_sec1_bytes(input) {
        return Ok(pk.to_encoded_point(false).as_bytes().to_vec());
    }
    Err(bad("unrecognised encoding"))
}

/// Generates a fresh P-256 key with ring. Returns (PKCS#8 PEM, uncompressed public point).
pub(crate) fn generate_p8() -> Result<(String, Vec<u8>), MockError> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| MockError::new(Kind::BadKey, "ring could not generate a P-256 key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
        .map_err(|_| MockError::new(Kind::BadKey, "ring rejected its own key"))?;
    Ok((
        pem_encode("PRIVATE KEY", doc.as_ref()),
        pair.public_key().as_ref().to_vec(),
    ))
}

/// PEM armour with 64-column base64 lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The parts of a provider token the mock uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenClaims {
    pub(crate) kid: String,
    pub(crate) iss: String,
    pub(crate) iat: i64,
}

/// How a JWT part was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum B64 {
    /// base64url without padding: strict JWS (RFC 7515).
    Strict,
    /// Anything else Apple evidently accepts: padding, or the standard alphabet (`+`, `/`), as
    /// the `a2` crate sends.
    Lenient,
}

/// Decodes a JWT part: base64url (strict), else base64url with padding or standard base64
/// with or without padding (lenient).
fn b64_part(part: &str) -> Option<(Vec<u8>, B64)> {
    if let Ok(bytes) = URL_SAFE_NO_PAD.decode(part) {
        return Some((bytes, B64::Strict));
    }
    let unpadded = part
        .strip_suffix("==")
        .or_else(|| part.strip_suffix('='))
        .unwrap_or(part);
    let standard = base64::engine::general_purpose::STANDARD_NO_PAD;
    URL_SAFE_NO_PAD
        .decode(unpadded)
        .or_else(|_| standard.decode(unpadded))
        .ok()
        .map(|bytes| (bytes, B64::Lenient))
}

/// A parsed provider token: claims, the signed text, the signature, and whether any part was
/// not strict base64url (accepted, but worth a warning).
#[derive(Debug, Clone)]
pub(crate) struct ParsedToken {
    pub(crate) claims: TokenClaims,
    pub(crate) signed: String,
    pub(crate) signature: Vec<u8>,
    pub(crate) lenient_base64: bool,
}

/// Parses a JWT's header and claims without verifying it. `None` = not a well-formed ES256 JWT.
pub(crate) fn parse_token(jwt: &str) -> Option<ParsedToken> {
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (header, h_enc) = b64_part(h)?;
    let (claims, c_enc) = b64_part(c)?;
    let (signature, s_enc) = b64_part(s)?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    if header.get("alg")?.as_str()? != "ES256" {
        return None;
    }
    let kid = header.get("kid")?.as_str()?.to_owned();
    let iss = claims.get("iss")?.as_str()?.to_owned();
    let iat = claims.get("iat")?.as_i64()?;
    Some(ParsedToken {
        claims: TokenClaims { kid, iss, iat },
        // The signature covers the parts as sent, whatever their alphabet.
        signed: format!("{h}.{c}"),
        signature,
        lenient_base64: [h_enc, c_enc, s_enc].contains(&B64::Lenient),
    })
}

/// Verifies an ES256 signature over `signed` with an uncompressed P-256 point, accepting the strict
/// JWS form (64-byte r‖s) and the DER form some clients emit.
pub(crate) fn verify_es256(public: &[u8], signed: &[u8], signature: &[u8]) -> bool {
    let alg = if signature.len() == 64 {
        &ECDSA_P256_SHA256_FIXED
    } else {
        &ECDSA_P256_SHA256_ASN1
    };
    UnparsedPublicKey::new(alg, public)
        .verify(signed, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem() {
        let (pem, public) = generate_p8().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(parse_public_key(pem.as_bytes()).unwrap(), public);
    }

    #[test]
    fn public_key_pem_der_and_point_are_read() {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let (pem, public) = generate_p8().unwrap();
        let sk = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
        let spki_pem = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let spki_der = sk.public_key().to_public_key_der().unwrap();
        assert_eq!(parse_public_key(spki_pem.as_bytes()).unwrap(), public);
        assert_eq!(parse_public_key(spki_der.as_bytes()).unwrap(), public);
        assert_eq!(parse_public_key(&public).unwrap(), public);
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(parse_public_key(b"hello").unwrap_err().is_bad_key());
    }

    #[test]
    fn standard_base64_and_padding_parse_leniently() {
        let header = r#"{"alg":"ES256","kid":"K"}"#;
        // Claims whose encoding needs `+`, `/` and padding in the standard alphabet.
        let claims = r#"{"iss":"T","iat":1700000000,"x":"??>>~~"}"#;
        let sig = [0xfbu8; 64];
        let std = base64::engine::general_purpose::STANDARD;
        let a2 = format!(
            "{}.{}.{}",
            std.encode(header),
            std.encode(claims),
            std.encode(sig)
        );
        assert!(a2.contains('+') || a2.contains('/'));
        let parsed = parse_token(&a2).unwrap();
        assert!(parsed.lenient_base64);
        assert_eq!(parsed.claims.iss, "T");
        assert_eq!(parsed.signature, sig);
        let strict = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(sig)
        );
        assert!(!parse_token(&strict).unwrap().lenient_base64);
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for t in ["", "a.b", "a.b.c.d", "!!.??.xx"] {
            assert!(parse_token(t).is_none(), "{t}");
        }
    }
}
