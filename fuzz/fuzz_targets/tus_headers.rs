//! Every tus header parser on the same arbitrary text: none panics, and
//! what each accepts holds its invariants (integers are plain digits,
//! metadata round-trips through `encode_metadata`, checksums have the
//! algorithm's digest length, concatenated ids are store-safe).

#![no_main]

use chute_tus::headers::{
    self, Concat, MAX_CONCAT_PARTS, MAX_METADATA_LEN, check_defer_length, check_resumable, encode_metadata,
    is_upload_id, parse_checksum, parse_concat, parse_metadata, parse_u64,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };

    if check_resumable(Some(value)).is_ok() {
        assert_eq!(value.trim(), chute_tus::TUS_VERSION);
    }
    assert!(check_resumable(None).is_err());

    for name in ["Upload-Length", "Upload-Offset"] {
        if let Ok(n) = parse_u64(name, value) {
            let digits = value.trim();
            assert!(
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                "{value:?}"
            );
            assert_eq!(digits.parse::<u64>(), Ok(n));
        }
    }

    if check_defer_length(value).is_ok() {
        assert_eq!(value.trim(), "1");
    }

    if let Ok(pairs) = parse_metadata(value) {
        assert!(value.len() <= MAX_METADATA_LEN);
        for (i, (key, _)) in pairs.iter().enumerate() {
            assert!(!key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b','));
            assert!(pairs[..i].iter().all(|(k, _)| k != key), "duplicate key {key:?}");
        }
        let encoded = encode_metadata(&pairs);
        if encoded.len() <= MAX_METADATA_LEN {
            assert_eq!(
                parse_metadata(&encoded).as_ref(),
                Ok(&pairs),
                "{value:?} re-encoded as {encoded:?}"
            );
        }
        let _ = headers::metadata_value(&pairs, &["filename", "name"]);
    }

    if let Ok(checksum) = parse_checksum(value) {
        let len = match checksum.algorithm {
            chute_tus::TusChecksumAlgorithm::Md5 => 16,
            chute_tus::TusChecksumAlgorithm::Sha1 => 20,
            chute_tus::TusChecksumAlgorithm::Sha256 => 32,
            chute_tus::TusChecksumAlgorithm::Crc32 => 4,
        };
        assert_eq!(checksum.digest.len(), len, "{value:?}");
    }

    match parse_concat(value) {
        Ok(Concat::Partial) => assert_eq!(value.trim(), "partial"),
        Ok(Concat::Final(ids)) => {
            assert!(!ids.is_empty() && ids.len() <= MAX_CONCAT_PARTS);
            for id in &ids {
                assert!(is_upload_id(id), "{id:?}");
                assert!(
                    chute_core::ObjectKey::parse(id).is_ok(),
                    "{id:?} is not a key segment"
                );
            }
        }
        Err(_) => {}
    }
});
