//! Grant, upload and receipt tokens through `Keyring::verify`: arbitrary
//! text, tokens the harness signs with the keyring's keys (then mutates),
//! and tokens signed by a key the keyring does not hold under one of its
//! key ids.
//!
//! Invariants: nothing panics; whatever is accepted carries an HMAC the
//! harness recomputes with one of the keyring's secrets, names the
//! audience and has not expired; a token signed by another key is never
//! accepted; a token the keyring signed with a future `exp` is accepted.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chute_core::token::{GRANT_AUDIENCE, RECEIPT_AUDIENCE, UPLOAD_AUDIENCE};
use chute_core::{GrantClaims, Keyring, ReceiptClaims, TokenKey};
use hmac::{Hmac, KeyInit as _, Mac as _};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;

const CURRENT: (&str, [u8; 32]) = ("k2", [0x42; 32]);
const RETIRED: (&str, [u8; 32]) = ("k1", [0x41; 32]);
const NOW: i64 = 1_800_000_000;
const AUDIENCES: [&str; 3] = [GRANT_AUDIENCE, UPLOAD_AUDIENCE, RECEIPT_AUDIENCE];

/// The input: a first line naming the mode, then its text.
/// - `verify`, then any text: the token;
/// - `mutate <at> <byte> <audience 0-2> <exp in seconds>`, then extra
///   claims as JSON: signed by the keyring's current key, then the byte
///   at `at` set to `byte`;
/// - `forge <k1|k2> <audience 0-2> <exp in seconds> <secret>`, then
///   extra claims: signed by a stranger's key that reuses a known key id.
enum Input {
    Text(String),
    Mutated {
        claims: Claims,
        at: usize,
        byte: u8,
    },
    Forged {
        claims: Claims,
        retired_kid: bool,
        secret: Vec<u8>,
    },
}

impl Input {
    fn parse(text: &str) -> Option<Self> {
        let (head, rest) = text.split_once('\n').unwrap_or((text, ""));
        let mut words = head.split(' ');
        let mode = words.next().unwrap_or_default();
        let words: Vec<&str> = words.collect();
        let int = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok()).unwrap_or(0);
        Some(match mode {
            "verify" => Self::Text(rest.to_owned()),
            "mutate" => Self::Mutated {
                at: usize::try_from(int(0)).unwrap_or(0),
                byte: u8::try_from(int(1) & 0xff).unwrap_or(0),
                claims: Claims {
                    audience: u8::try_from(int(2) & 0xff).unwrap_or(0),
                    exp_in: i32::try_from(int(3)).unwrap_or(0),
                    extra: rest.to_owned(),
                },
            },
            "forge" => Self::Forged {
                retired_kid: words.first() == Some(&"k1"),
                claims: Claims {
                    audience: u8::try_from(int(1) & 0xff).unwrap_or(0),
                    exp_in: i32::try_from(int(2)).unwrap_or(0),
                    extra: rest.to_owned(),
                },
                secret: words.get(3).unwrap_or(&"").as_bytes().to_vec(),
            },
            _ => return None,
        })
    }
}

struct Claims {
    audience: u8,
    exp_in: i32,
    /// Extra claims, as JSON text merged in when it is an object.
    extra: String,
}

impl Claims {
    fn audience(&self) -> &'static str {
        AUDIENCES[usize::from(self.audience) % AUDIENCES.len()]
    }

    fn to_json(&self) -> Value {
        let mut claims = match serde_json::from_str::<Value>(&self.extra) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        claims.insert("aud".into(), self.audience().into());
        claims.insert("exp".into(), (NOW + i64::from(self.exp_in)).into());
        Value::Object(claims)
    }
}

fn keyring() -> Keyring {
    let key = |(kid, secret): (&str, [u8; 32])| TokenKey::new(kid, secret.to_vec()).expect("a valid key");
    Keyring::new(key(CURRENT), vec![key(RETIRED)])
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).expect("a valid instant")
}

/// Whether `token`'s signature is the HMAC of its first two parts under
/// one of the keyring's secrets, recomputed here.
fn signed_by_keyring(token: &str) -> bool {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    [CURRENT.1, RETIRED.1].iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).is_ok()
    })
}

/// Verifies `token` for every audience and every claims type; returns
/// whether any accepted it, checking what an acceptance implies.
fn verify_everywhere(ring: &Keyring, token: &str) -> bool {
    let mut accepted = false;
    for audience in AUDIENCES {
        let generic = ring.verify::<Value>(token, audience, now());
        let grant = ring.verify::<GrantClaims>(token, audience, now());
        let receipt = ring.verify::<ReceiptClaims>(token, audience, now());
        if grant.is_ok() || receipt.is_ok() {
            assert!(
                generic.is_ok(),
                "typed claims accepted where the JSON claims are not"
            );
        }
        if let Ok(claims) = generic {
            accepted = true;
            assert!(
                signed_by_keyring(token),
                "accepted a token not signed by the keyring: {token}"
            );
            assert_eq!(
                claims.get("aud").and_then(Value::as_str),
                Some(audience),
                "{claims}"
            );
            let exp = claims
                .get("exp")
                .and_then(Value::as_i64)
                .expect("an accepted token has exp");
            assert!(exp > NOW, "expired token accepted: exp {exp}");
            if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
                assert!(nbf <= NOW, "not-yet-valid token accepted: nbf {nbf}");
            }
        }
    }
    accepted
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = std::str::from_utf8(data).ok().and_then(Input::parse) else {
        return;
    };
    let ring = keyring();
    match input {
        Input::Text(token) => {
            verify_everywhere(&ring, &token);
        }
        Input::Mutated { claims, at, byte } => {
            let json = claims.to_json();
            let Ok(token) = ring.sign(&json) else {
                return;
            };
            // Time claims from `extra` may rightly refuse it.
            let plain = ["nbf", "iat"].iter().all(|k| json.get(k).is_none());
            if claims.exp_in > 0 && plain {
                let back = ring
                    .verify::<Value>(&token, claims.audience(), now())
                    .unwrap_or_else(|e| panic!("own token {json} refused: {e}"));
                assert_eq!(back.get("aud"), json.get("aud"));
            }
            let mut bytes = token.into_bytes();
            if bytes.is_empty() {
                return;
            }
            let i = at % bytes.len();
            bytes[i] = byte;
            if let Ok(mutated) = String::from_utf8(bytes) {
                verify_everywhere(&ring, &mutated);
            }
        }
        Input::Forged {
            claims,
            retired_kid,
            mut secret,
        } => {
            secret.resize(secret.len().max(32), 0);
            let kid = if retired_kid { RETIRED.0 } else { CURRENT.0 };
            if secret == CURRENT.1 || secret == RETIRED.1 {
                return;
            }
            let stranger = Keyring::new(TokenKey::new(kid, secret).expect("a valid key"), vec![]);
            let Ok(token) = stranger.sign(&claims.to_json()) else {
                return;
            };
            assert!(
                !verify_everywhere(&ring, &token),
                "a stranger's token was accepted"
            );
        }
    }
});
