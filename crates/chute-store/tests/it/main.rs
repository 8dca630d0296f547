//! Integration tests of chute-store: one binary, one module per concern.
#![allow(clippy::unwrap_used)]

mod buckets; // FsStore bucket management and per-bucket configs
mod conformance; // the shared conformance suite on FsBucket
mod crash; // open() removes what a crash leaves; failed and create-only writes leave nothing
mod hostile_keys; // keys never escape the data directory
mod list_props; // proptest: listings equal the in-memory S3 model
mod support; // a temp store and bucket for each test
