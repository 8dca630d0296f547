//! Which tus extensions a store supports, derived from what it can do
//! (`Tus-Extension` in `OPTIONS`).
//!
//! | extension | needs |
//! |---|---|
//! | creation, creation-with-upload, creation-defer-length | [`MultipartStore`](chute_store::MultipartStore) (parts, the tail as a plain object) |
//! | termination | `abort_multipart` and `delete` |
//! | expiration | the reaper (`list_multipart_uploads`, `list`) |
//! | checksum | nothing from the store: the server hashes the PATCH body |
//! | concatenation | ranged-free `get` of the partial objects, streamed into the final's parts |
//!
//! Every [`MultipartStore`](chute_store::MultipartStore) has all of these,
//! so today the list is the same for both backends; a capability flag
//! that some store lacks (as `create_only` is for Garage) is checked here
//! when an extension comes to depend on one.

use chute_store::StoreCapabilities;

/// The extensions offered over a store with `capabilities`, in the order
/// `Tus-Extension` lists them.
pub fn extensions(capabilities: StoreCapabilities) -> Vec<&'static str> {
    // No extension needs create-only puts: upload ids are random, and the
    // per-upload lock serialises writers within an instance.
    let _ = capabilities.create_only;
    vec![
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
        "concatenation",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_offer_everything() {
        let all = extensions(StoreCapabilities::ALL);
        assert_eq!(all.len(), 7);
        let mut garage = StoreCapabilities::ALL;
        garage.create_only = false;
        assert_eq!(extensions(garage), all);
    }
}
