//! The durable spool: every segment is written here before any sink sees it, and leaves
//! only when every sink has it (delivered or dead-lettered), so a slow or dead downstream
//! and a crash or restart lose nothing.
//!
//! redb rather than SQLite: it is pure Rust (no C library to build beside whisper.cpp), its
//! typed tables suit a queue keyed by sequence number, and its copy-on-write commits survive
//! SIGKILL without a write-ahead log to recover. Every call here blocks (a commit fsyncs):
//! async code calls it through `spawn_blocking` or the forwarder's intake thread.
//!
//! Tables: `segments` (seq → record JSON), `pending` ((sink, seq) → ()), `dead_letters`
//! ((sink, seq) → reason JSON), `meta` (next seq). The sequence number is global and
//! increasing, so reading a sink's pending keys in order is reading each call in order.

// redb's error is 160 bytes; here it lives only inside one transaction closure and is turned
// into a `SpoolError` (a path and a message) before it leaves this module.
#![allow(clippy::result_large_err)]

use super::segment::Spooled;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

const SEGMENTS: TableDefinition<u64, &str> = TableDefinition::new("segments");
const PENDING: TableDefinition<(&str, u64), ()> = TableDefinition::new("pending");
const DEAD: TableDefinition<(&str, u64), &str> = TableDefinition::new("dead_letters");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Sinks still holding a record (pending or dead-lettered): the record goes at zero.
const HOLDERS: TableDefinition<u64, u64> = TableDefinition::new("holders");
const NEXT_SEQ: &str = "next_seq";

#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {message}")]
pub struct SpoolError {
    pub path: PathBuf,
    pub message: String,
}

/// Why a segment was parked instead of delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub sink: String,
    pub seq: u64,
    pub reason: String,
    pub at_unix_ms: i64,
    pub record: Spooled,
}

/// Counts per sink.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpoolStatus {
    /// Segments held (pending for at least one sink, or dead-lettered).
    pub segments: u64,
    pub pending: BTreeMap<String, u64>,
    pub dead_letters: BTreeMap<String, u64>,
}

pub struct Spool {
    /// `None` after an I/O error closed it and reopening has not worked yet.
    db: RwLock<Option<Database>>,
    path: PathBuf,
}

/// A record as the `segments` table stores it (JSON). The spool file is read back after
/// crashes and by other tools, so its contents are input: a bad record is an error.
pub fn decode_record(json: &str) -> Result<Spooled, serde_json::Error> {
    serde_json::from_str(json)
}

/// A `dead_letters` entry: the reason and when (Unix ms); fields missing or of the wrong
/// type read as empty and 0, as an older entry may lack them.
pub fn decode_dead_entry(json: &str) -> Result<(String, i64), serde_json::Error> {
    let entry: serde_json::Value = serde_json::from_str(json)?;
    Ok((
        entry["reason"].as_str().unwrap_or_default().to_owned(),
        entry["at_unix_ms"].as_i64().unwrap_or_default(),
    ))
}

/// Closes a database handle. After a failed write redb's `Drop` writes too, and in redb 2.6
/// can panic on the state the failure left: contained, as the handle is being discarded
/// anyway and the next open repairs the file.
fn close(db: Option<Database>) {
    if let Err(panic) = crate::runtime::contain(move || drop(db)) {
        tracing::debug!("closing the spool after an I/O error: {panic}");
    }
}

impl Spool {
    /// Opens (or creates) the spool file; after a crash redb repairs it here.
    pub fn open(path: &Path) -> Result<Self, SpoolError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SpoolError {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        }
        let spool = Spool {
            db: RwLock::new(None),
            path: path.to_owned(),
        };
        spool.reopen()?;
        // Create the tables so that readers never meet a missing one.
        spool.write(Durability::Immediate, |txn| {
            txn.open_table(SEGMENTS)?;
            txn.open_table(PENDING)?;
            txn.open_table(DEAD)?;
            txn.open_table(META)?;
            txn.open_table(HOLDERS)?;
            Ok(())
        })?;
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> SpoolError {
        SpoolError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// (Re)opens the database file. redb refuses every transaction after a failed write
    /// ("previous I/O error") until the database is closed and opened again, which is also
    /// when it repairs the file: a full or failing disk that recovers is used again without a
    /// restart.
    fn reopen(&self) -> Result<(), SpoolError> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        // The old handle must be closed first: redb allows one open handle per file.
        close(db.take());
        // Opening repairs the file after a failed write, which writes too: on a disk still
        // full it fails (or, in redb 2.6, can panic on a page it never wrote); contained,
        // it is tried again at the next use.
        let opened = crate::runtime::contain(|| Database::create(&self.path))
            .map_err(|panic| self.err(format!("reopening after an I/O error failed: {panic}")))?;
        *db = Some(opened.map_err(|e| self.err(e))?);
        Ok(())
    }

    /// The open database, reopening it first if an I/O error closed it.
    fn db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, SpoolError> {
        {
            let db = self.db.read().unwrap_or_else(|e| e.into_inner());
            if db.is_some() {
                return Ok(db);
            }
        }
        self.reopen()?;
        Ok(self.db.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the database; an I/O error closes it, so that the next call reopens it.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T, SpoolError> {
        let result = {
            let guard = self.db()?;
            let db = guard.as_ref().ok_or_else(|| self.err("not open"))?;
            // redb 2.6 can panic inside a transaction that follows a failed write (an
            // `unwrap` in its table tree): contained, and handled as the I/O error it is.
            crate::runtime::contain(|| f(db))
        };
        let failed = |message: String| {
            close(self.db.write().unwrap_or_else(|e| e.into_inner()).take());
            self.err(message)
        };
        match result {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e @ (redb::Error::Io(_) | redb::Error::PreviousIo))) => {
                Err(failed(e.to_string()))
            }
            Ok(Err(e)) => Err(self.err(e)),
            Err(panic) => Err(failed(format!(
                "the database failed after an I/O error: {panic}"
            ))),
        }
    }

    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, SpoolError> {
        self.with_db(|db| {
            let mut txn = db.begin_write()?;
            txn.set_durability(durability);
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        })
    }

    /// Appends records pending for every one of `sinks`, in one durable commit (one fsync
    /// for the batch). Returns their sequence numbers.
    pub fn append(&self, records: &[Spooled], sinks: &[String]) -> Result<Vec<u64>, SpoolError> {
        self.append_routed(records, |_| sinks)
    }

    /// [`append`](Self::append), each record pending for the sinks `route` names for it (a
    /// call event only for the sinks that publish events). A record no sink takes is not
    /// stored; it still uses a sequence number.
    pub fn append_routed<'s>(
        &self,
        records: &[Spooled],
        route: impl Fn(&Spooled) -> &'s [String],
    ) -> Result<Vec<u64>, SpoolError> {
        let json: Vec<(String, &[String])> = records
            .iter()
            .map(|r| {
                (
                    serde_json::to_string(r).expect("a record always serialises"),
                    route(r),
                )
            })
            .collect();
        self.write(Durability::Immediate, |txn| {
            let mut meta = txn.open_table(META)?;
            let mut next = meta.get(NEXT_SEQ)?.map_or(0, |v| v.value());
            let mut segments = txn.open_table(SEGMENTS)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut holders = txn.open_table(HOLDERS)?;
            let mut seqs = Vec::with_capacity(json.len());
            for (j, sinks) in &json {
                if !sinks.is_empty() {
                    segments.insert(next, j.as_str())?;
                    for s in *sinks {
                        pending.insert((s.as_str(), next), ())?;
                    }
                    holders.insert(next, sinks.len() as u64)?;
                }
                seqs.push(next);
                next += 1;
            }
            meta.insert(NEXT_SEQ, next)?;
            Ok(seqs)
        })
    }

    /// The oldest `limit` records pending for `sink`, in sequence order.
    pub fn pending(&self, sink: &str, limit: usize) -> Result<Vec<(u64, Spooled)>, SpoolError> {
        let rows = self.with_db(|db| {
            let txn = db.begin_read()?;
            let pending = txn.open_table(PENDING)?;
            let segments = txn.open_table(SEGMENTS)?;
            let mut rows = Vec::new();
            for item in pending.range((sink, 0)..=(sink, u64::MAX))?.take(limit) {
                let seq = item?.0.value().1;
                if let Some(json) = segments.get(seq)? {
                    rows.push((seq, json.value().to_owned()));
                }
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(seq, json)| {
                decode_record(&json)
                    .map(|r| (seq, r))
                    .map_err(|e| self.err(format!("record {seq}: {e}")))
            })
            .collect()
    }

    /// `sink` has `seq`. Not fsynced: a lost acknowledgement only means one more delivery,
    /// which at-least-once allows, and it saves a disk flush per segment.
    pub fn ack(&self, sink: &str, seq: u64) -> Result<(), SpoolError> {
        self.write(Durability::Eventual, |txn| {
            if txn.open_table(PENDING)?.remove((sink, seq))?.is_some() {
                Self::release(txn, seq)?;
            }
            Ok(())
        })
    }

    /// Parks `seq` for `sink` with the reason the downstream gave; it is not retried.
    pub fn dead_letter(&self, sink: &str, seq: u64, reason: &str) -> Result<(), SpoolError> {
        let entry = serde_json::json!({
            "reason": reason,
            "at_unix_ms": super::segment::unix_ms_now(),
        })
        .to_string();
        self.write(Durability::Immediate, |txn| {
            txn.open_table(PENDING)?.remove((sink, seq))?;
            txn.open_table(DEAD)?.insert((sink, seq), entry.as_str())?;
            Ok(())
        })
    }

    /// One sink fewer holds the record; the last one removes it.
    fn release(txn: &redb::WriteTransaction, seq: u64) -> Result<(), redb::Error> {
        let mut holders = txn.open_table(HOLDERS)?;
        let left = holders.get(seq)?.map_or(0, |v| v.value()).saturating_sub(1);
        if left == 0 {
            holders.remove(seq)?;
            txn.open_table(SEGMENTS)?.remove(seq)?;
        } else {
            holders.insert(seq, left)?;
        }
        Ok(())
    }

    pub fn status(&self) -> Result<SpoolStatus, SpoolError> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let mut status = SpoolStatus {
                segments: txn.open_table(SEGMENTS)?.len()?,
                ..Default::default()
            };
            for item in txn.open_table(PENDING)?.iter()? {
                let (k, _) = item?;
                *status.pending.entry(k.value().0.to_owned()).or_default() += 1;
            }
            for item in txn.open_table(DEAD)?.iter()? {
                let (k, _) = item?;
                *status
                    .dead_letters
                    .entry(k.value().0.to_owned())
                    .or_default() += 1;
            }
            Ok(status)
        })
    }

    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        let rows = self.with_db(|db| {
            let txn = db.begin_read()?;
            let dead = txn.open_table(DEAD)?;
            let segments = txn.open_table(SEGMENTS)?;
            let mut rows = Vec::new();
            for item in dead.iter()? {
                let (k, v) = item?;
                let (sink, seq) = k.value();
                if let Some(json) = segments.get(seq)? {
                    rows.push((
                        sink.to_owned(),
                        seq,
                        v.value().to_owned(),
                        json.value().to_owned(),
                    ));
                }
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(sink, seq, entry, json)| {
                let (reason, at_unix_ms) = decode_dead_entry(&entry).map_err(|e| self.err(e))?;
                Ok(DeadLetter {
                    sink,
                    seq,
                    reason,
                    at_unix_ms,
                    record: decode_record(&json).map_err(|e| self.err(e))?,
                })
            })
            .collect()
    }
}
