//! Appending a PATCH body to an upload: the committed tail plus the new
//! bytes are cut into parts of the planned size; full parts are uploaded
//! while the next ones are read from the socket (at most
//! [`Append::parts_in_flight`] at once, so memory stays near that many
//! parts plus one; the socket is not read while they are all busy), and
//! the rest becomes the new tail.
//!
//! Without a checksum every stored part is committed in order as soon as
//! it and the parts before it are stored, and a body
//! that breaks off (disconnect, idle timeout) keeps what arrived, as the
//! tus core protocol asks. With a checksum nothing is committed until the
//! whole body has arrived and its digest matches; otherwise the upload
//! stays as it was.
//!
//! With [`Append::lease`] the store lease is checked before each part is
//! sent and before each commit: once it ran out, the append stops with
//! [`WriteError::LeaseLost`] and commits nothing more.
//!
//! Over a store with [`AppendableUploads`] an upload with nothing
//! committed in parts is stored in place instead: the body is appended
//! to the store's staging file in segments of at most
//! [`APPEND_SEGMENT`] bytes, each made durable by the store and then
//! committed (`appended=N`), so a server crash loses at most one segment
//! of a PATCH and a broken body keeps what arrived. With a checksum
//! nothing is committed until the digest matches; the bytes appended
//! meanwhile lie past the committed offset, and the next append cuts
//! them. No part is cut, hashed (but for `Upload-Checksum`) or joined.

use crate::headers::{BodyHasher, UploadChecksum};
use crate::lease::{LeaseLost, LeaseWatch};
use crate::state::{Progress, TusStore, UploadInfo, once};
use bytes::{Bytes, BytesMut};
use chute_store::{AppendableUploads, PartOptions, StoreError};
use futures::{SinkExt as _, Stream, StreamExt as _};
use std::collections::VecDeque;
use tokio::task::JoinHandle;

/// Why a PATCH body was not (wholly) taken.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed; the committed state is what it was before the
    /// failing step.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The body would pass `limit` bytes of upload (its length or the
    /// grant's); bytes before that point are kept only without a checksum.
    #[error("the body would take the upload past {limit} bytes")]
    TooLong {
        /// The limit.
        limit: u64,
    },
    /// The body's digest is not the one in `Upload-Checksum`; nothing of
    /// it was kept.
    #[error("the body does not match Upload-Checksum")]
    ChecksumMismatch,
    /// The body broke off; what arrived before is kept (without a checksum).
    #[error("the request body broke off: {0}")]
    Interrupted(String),
    /// The store lease ran out: nothing more was committed.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
}

/// The options of one append.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// The most bytes the upload may reach.
    pub limit: u64,
    /// `Upload-Checksum` of the body, if given.
    pub checksum: Option<UploadChecksum>,
    /// Parts uploading at once (at least 1; 0 counts as 1).
    pub parts_in_flight: usize,
    /// The store lease the writer holds, checked before each part and
    /// each commit (`None`: in-process locking only).
    pub lease: Option<LeaseWatch>,
}

impl Append {
    fn held(&self) -> Result<(), LeaseLost> {
        self.lease.as_ref().map_or(Ok(()), LeaseWatch::check)
    }
}

type InFlight = JoinHandle<Result<(), StoreError>>;

/// The most bytes of a PATCH appended in place between two commit points
/// (64 MiB): what a server crash can lose of a PATCH in progress, and
/// how often the body waits for an fsync.
pub const APPEND_SEGMENT: u64 = 64 * 1024 * 1024;

/// Chunks queued between the body and the store's append.
const APPEND_QUEUE: usize = 4;

impl TusStore {
    /// Appends `body` to the upload at `progress` (the caller holds the
    /// upload's lock and checked the client's offset); returns the new
    /// committed progress.
    pub async fn append<S, E>(
        &self,
        info: &UploadInfo,
        progress: Progress,
        body: S,
        opts: Append,
    ) -> Result<Progress, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        if let Some(app) = self.appendable_for(info, &progress)? {
            return self.append_in_place(app, info, progress, body, opts).await;
        }
        let mut body = body;
        let mut parts = progress.parts;
        let mut offset = progress.offset(&info.plan);
        // Each part's buffer is allocated once at its full size, so
        // filling it never reallocates (a doubling BytesMut would).
        let mut buf = part_buffer(info.plan.part_len(parts + 1), &progress.tail);
        let mut hasher = opts.checksum.as_ref().map(|c| BodyHasher::new(c.algorithm));
        let commit = opts.checksum.is_none().then_some(&opts);
        let most = opts.parts_in_flight.max(1);
        let mut in_flight: VecDeque<(u32, InFlight)> = VecDeque::with_capacity(most);
        let mut failure = None;
        'body: while let Some(item) = body.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(WriteError::Interrupted(e.to_string()));
                    break;
                }
            };
            if offset.saturating_add(chunk.len() as u64) > opts.limit {
                failure = Some(WriteError::TooLong { limit: opts.limit });
                break;
            }
            offset += chunk.len() as u64;
            if let Some(h) = &mut hasher {
                h.update(&chunk);
            }
            buf.extend_from_slice(&chunk);
            while buf.len() as u64 >= info.plan.part_len(parts + 1) {
                let len = info.plan.part_len(parts + 1);
                let rest = buf.split_off(len as usize);
                let part =
                    std::mem::replace(&mut buf, part_buffer(info.plan.part_len(parts + 2), &rest)).freeze();
                if let Err(lost) = opts.held() {
                    failure = Some(lost.into());
                    break 'body;
                }
                parts += 1;
                // At most `most` parts in flight: past that, wait for the
                // oldest (and commit it, in order) before reading on.
                if in_flight.len() >= most {
                    self.settle_oldest(info, &mut in_flight, commit).await?;
                }
                in_flight.push_back((parts, self.spawn_part(info, parts, part)));
            }
        }
        let mut settled = Ok(());
        while !in_flight.is_empty() {
            settled = self.settle_oldest(info, &mut in_flight, commit).await;
            if settled.is_err() {
                // The parts after a failed one can never be committed by
                // this PATCH: stop them, so none lands after the next
                // PATCH has stored that part again.
                for (_, task) in in_flight.drain(..) {
                    task.abort();
                }
                break;
            }
        }
        if let Some(failure) = failure {
            // Without a checksum, keep what arrived: every part through
            // `parts` is stored, the rest becomes the tail. When a part
            // failed, the store still says the last part committed before
            // it (consistent; the later ones were stopped).
            if hasher.is_none() && settled.is_ok() {
                opts.held()?;
                self.commit(info, parts, buf.freeze()).await?;
            }
            return Err(failure);
        }
        settled?;
        if let (Some(h), Some(expected)) = (hasher, &opts.checksum)
            && h.finish() != expected.digest
        {
            return Err(WriteError::ChecksumMismatch);
        }
        let tail = buf.freeze();
        if parts != progress.parts || tail != progress.tail {
            opts.held()?;
            self.commit(info, parts, tail.clone()).await?;
        }
        Ok(Progress {
            parts,
            tail,
            appended: 0,
            length: progress.length,
        })
    }

    /// [`Self::append`] for an upload stored in place: the body goes to
    /// the store's staging file segment by segment, each committed once
    /// durable (without a checksum).
    async fn append_in_place<S, E>(
        &self,
        app: &dyn AppendableUploads,
        info: &UploadInfo,
        progress: Progress,
        body: S,
        opts: Append,
    ) -> Result<Progress, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let mut body = body;
        let start = progress.offset(&info.plan);
        let mut hasher = opts.checksum.as_ref().map(|c| BodyHasher::new(c.algorithm));
        let commit = opts.checksum.is_none();
        // `taken`: bytes taken from the body into the store (past
        // `start`); `committed`: the offset the tail records.
        let mut taken = start;
        let mut committed = start;
        let mut carry: Option<Bytes> = None;
        let mut failure = None;
        let mut ended = false;
        while !ended && failure.is_none() {
            // A segment starts only with a chunk in hand, so a body that
            // ends (or is empty) at a segment boundary costs no append.
            if carry.is_none() {
                match body.next().await {
                    None => break,
                    Some(Err(e)) => {
                        failure = Some(WriteError::Interrupted(e.to_string()));
                        break;
                    }
                    Some(Ok(c)) => carry = Some(c),
                }
            }
            // Nothing more reaches the store once the lease ran out.
            opts.held()?;
            let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(APPEND_QUEUE);
            let from = taken;
            let feed = async {
                let mut sent = 0u64;
                while sent < APPEND_SEGMENT {
                    let mut chunk = match carry.take() {
                        Some(c) => c,
                        None => match body.next().await {
                            None => {
                                ended = true;
                                break;
                            }
                            Some(Err(e)) => {
                                failure = Some(WriteError::Interrupted(e.to_string()));
                                break;
                            }
                            Some(Ok(c)) => c,
                        },
                    };
                    if taken.saturating_add(chunk.len() as u64) > opts.limit {
                        failure = Some(WriteError::TooLong { limit: opts.limit });
                        break;
                    }
                    let room = usize::try_from(APPEND_SEGMENT - sent).unwrap_or(usize::MAX);
                    if chunk.len() > room {
                        carry = Some(chunk.split_off(room));
                    }
                    if let Some(h) = &mut hasher {
                        h.update(&chunk);
                    }
                    taken += chunk.len() as u64;
                    sent += chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the store failed; its error comes below
                    }
                }
                drop(tx);
            };
            let store = app.append(&info.key, &info.multipart, from, rx.boxed());
            let ((), stored) = futures::join!(feed, store);
            let stored = stored?;
            if stored != taken {
                return Err(WriteError::Store(StoreError::Corrupt(format!(
                    "tus upload {}: the store holds {stored} bytes after an append, not {taken}",
                    info.id
                ))));
            }
            if commit && stored != committed {
                opts.held()?;
                self.commit_appended(info, stored).await?;
                committed = stored;
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        if let (Some(h), Some(expected)) = (hasher, &opts.checksum) {
            if h.finish() != expected.digest {
                return Err(WriteError::ChecksumMismatch);
            }
            if taken != committed {
                opts.held()?;
                self.commit_appended(info, taken).await?;
            }
        }
        Ok(Progress {
            parts: 0,
            tail: Bytes::new(),
            appended: taken,
            length: progress.length,
        })
    }

    /// Stores part `number` on a task.
    fn spawn_part(&self, info: &UploadInfo, number: u32, part: Bytes) -> InFlight {
        let tus = self.clone();
        let info = info.clone();
        tokio::spawn(async move {
            let len = part.len() as u64;
            tus.store()
                .upload_part(
                    &info.key,
                    &info.multipart,
                    number,
                    once(part),
                    PartOptions {
                        expected_len: Some(len),
                        ..Default::default()
                    },
                )
                .await?;
            Ok(())
        })
    }

    /// Waits for the oldest part in flight and, with `commit` (the append's
    /// options, for its lease), records it as the commit point (with an
    /// empty tail: the bytes before it are in it). Parts finish in any
    /// order but commit in order.
    async fn settle_oldest(
        &self,
        info: &UploadInfo,
        in_flight: &mut VecDeque<(u32, InFlight)>,
        commit: Option<&Append>,
    ) -> Result<(), WriteError> {
        let Some((number, task)) = in_flight.pop_front() else {
            return Ok(());
        };
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(join) => return Err(StoreError::Io(std::io::Error::other(join.to_string())).into()),
        }
        if let Some(opts) = commit {
            opts.held()?;
            self.commit(info, number, Bytes::new()).await?;
        }
        Ok(())
    }
}

/// An empty part buffer of `capacity` bytes (bounded: the tail is
/// smaller than a part) holding `start`.
fn part_buffer(capacity: u64, start: &[u8]) -> BytesMut {
    let cap = usize::try_from(capacity).unwrap_or(usize::MAX).max(start.len());
    let mut buf = BytesMut::with_capacity(cap);
    buf.extend_from_slice(start);
    buf
}
