use crate::harness::{REGION, Server, default_creds};
use chute_store::conformance::{run_multipart_suite, run_store_suite};
use chute_store::s3::{S3Store, S3StoreConfig};
use chute_store::{BucketName, Store as _};

/// The S3 backend's client pointed at the embedded endpoint: a second real
/// peer besides Garage, and one that honours `If-None-Match: *`, so the
/// full create-only clause (with its races) runs over HTTP too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_over_the_embedded_endpoint_passes_both_suites() {
    let server = Server::with_bucket("client").await;
    let config = S3StoreConfig {
        endpoint: server.endpoint(),
        region: REGION.to_owned(),
        bucket: BucketName::parse("client").unwrap(),
        credentials: default_creds(),
        session_token: None,
        path_style: true,
        allow_http: true,
    };
    let store = S3Store::connect(config).await.unwrap();
    assert!(
        store.capabilities().create_only,
        "the embedded endpoint honours If-None-Match: * and the probe must see it"
    );
    run_store_suite(&store).await;
    run_multipart_suite(&store).await;
}
