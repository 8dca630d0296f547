//! Integration tests of chute-store: one binary, one module per concern.
#![allow(clippy::unwrap_used)]

mod append; // appendable uploads on FsBucket: offsets, cuts, completion, crashes, aborts
mod buckets; // FsStore bucket management and per-bucket configs
mod conformance; // the shared conformance suite on FsBucket
mod crash; // open() removes what a crash leaves; failed and create-only writes leave nothing
mod garage; // a real single-node Garage per test process, a bucket per test
mod hostile_keys; // keys never escape the data directory
mod list_props; // proptest: listings equal the in-memory S3 model
mod s3_store; // S3Store against Garage: both suites, streaming, failures, credentials
mod support; // a temp store and bucket for each test
