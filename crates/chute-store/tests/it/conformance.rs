use crate::support::test_store;
use chute_store::conformance::{run_multipart_suite, run_store_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_passes_the_store_suite() {
    let t = test_store().await;
    run_store_suite(&t.bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_passes_the_multipart_suite() {
    let t = test_store().await;
    run_multipart_suite(&t.bucket).await;
}
