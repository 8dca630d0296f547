//! Integration tests of the embedded S3 endpoint: the real service on a
//! loopback port over an `FsStore` in a tempdir, driven by real HTTP
//! requests signed with `chute_core::sigv4`.

#![allow(clippy::unwrap_used, missing_docs)]

/// Starting the server and signing requests.
mod harness;

/// Signatures, presigned URLs, unknown keys, anonymous and unsupported requests.
mod auth;
/// CreateBucket, ListBuckets, HeadBucket, GetBucketLocation, DeleteBucket.
mod buckets;
/// CORS configuration, preflights and headers on actual responses.
mod cors;
/// Content-MD5, x-amz-checksum-* and aws-chunked trailer checks.
mod integrity;
/// ListObjectsV2 pagination with delimiter, ListObjects v1, ListObjectVersions.
mod listing;
/// The multipart family, including UploadPartCopy.
mod multipart;
/// PutObject, GetObject (ranges), HeadObject, DeleteObject(s), CopyObject.
mod objects;
/// Browser POST Object: success shapes and refusals that store nothing.
mod post_object;
/// chute-store's S3 backend as a client of the endpoint: both conformance suites.
mod s3_store_client;
/// Request bodies that stall get `RequestTimeout` and store nothing.
mod slow_clients;
/// A 256 MiB PUT and GET stream through in bounded memory.
mod streaming;
/// Traversal keys are refused and nothing lands outside the bucket.
mod traversal;
