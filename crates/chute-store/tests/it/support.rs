use chute_store::BucketName;
use chute_store::fs::{FsBucket, FsStore};
use std::path::{Path, PathBuf};

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: FsStore,
    pub bucket: FsBucket,
}

impl TestStore {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

pub fn bucket_name(s: &str) -> BucketName {
    BucketName::parse(s).unwrap()
}

pub async fn test_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let name = bucket_name("test-bucket");
    store.create_bucket(&name).await.unwrap();
    let bucket = store.bucket(&name).await.unwrap();
    TestStore { dir, store, bucket }
}

/// Every path below `root`, recursively.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}
