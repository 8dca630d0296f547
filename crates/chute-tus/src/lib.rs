//! tus 1.0 resumable uploads over any [`chute_store::MultipartStore`]:
//! the protocol's headers as typed values ([`headers`]), how bytes are cut
//! into multipart parts ([`plan`]), the upload state kept in the store
//! itself ([`state`]), appending PATCH bodies ([`write`]), the protocol
//! extensions a store supports ([`extensions`]) and the per-upload lock
//! ([`locks`]), across instances a lease kept in the store ([`lease`]).
//!
//! HTTP routing, grants, receipts and hooks belong to the server
//! (`chute-server/src/tus`), which keeps its own description of each
//! upload in [`state::UploadInfo::ticket`]; this crate knows nothing of it.

pub mod extensions;
pub mod headers;
pub mod lease;
pub mod locks;
pub mod plan;
pub mod state;
pub mod write;

pub use extensions::extensions;
pub use headers::{Concat, HeaderError, TUS_VERSION, TusChecksumAlgorithm, UploadChecksum};
pub use lease::{LeaseLost, LeaseWatch, LockError, StoreLeases};
pub use locks::{UploadGuard, UploadLocks};
pub use plan::{DEFAULT_PART_SIZE, MAX_BASE, MAX_PART_SIZE, PartPlan};
pub use state::{ConcatRole, Peek, Position, Progress, STATE_PREFIX, Status, TusStore, UploadInfo};
pub use write::{Append, WriteError};
