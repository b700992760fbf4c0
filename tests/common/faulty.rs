//! A fault-injecting redb [`StorageBackend`]: the bytes written (`live`) are
//! kept apart from the bytes last made durable (`synced`), and writes,
//! syncs or resizes fail from their Nth call on (a dead disk). A power cut
//! is a reopen over `synced`; a process kill is a reopen over `live`.
//!
//! Included with `mod common;` (as `common::faulty`) or
//! `#[path = "common/faulty.rs"] mod faulty;`.
#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::StorageBackend;

/// The bytes of a database.
#[derive(Debug, Default, Clone)]
pub struct Disk {
    pub live: Vec<u8>,
    pub synced: Vec<u8>,
}

/// Calls left before an operation starts failing; negative: never fails.
/// Also counts every call, to find the fault points of a workload.
#[derive(Debug)]
pub struct Countdown {
    left: AtomicI64,
    calls: AtomicU64,
    failed: AtomicU64,
}

impl Countdown {
    pub fn off() -> Self {
        Countdown {
            left: AtomicI64::new(-1),
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
    /// Fails the call after `calls` more successful ones, and every later one.
    pub fn arm(&self, calls: i64) {
        self.left.store(calls, Ordering::SeqCst);
    }
    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    /// Calls that failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
    /// Whether this call fails (and every later one: a dead disk).
    pub fn fails(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let left = self.left.load(Ordering::SeqCst);
        if left < 0 {
            return false;
        }
        if left == 0 {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        self.left.store(left - 1, Ordering::SeqCst);
        false
    }
}

#[derive(Debug)]
pub struct Faults {
    pub write: Countdown,
    pub sync: Countdown,
    pub set_len: Countdown,
}

/// Which operation a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Write,
    Sync,
    SetLen,
}

impl Faults {
    pub fn get(&self, fault: Fault) -> &Countdown {
        match fault {
            Fault::Write => &self.write,
            Fault::Sync => &self.sync,
            Fault::SetLen => &self.set_len,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FaultyBackend {
    pub disk: Arc<Mutex<Disk>>,
    pub faults: Arc<Faults>,
}

impl FaultyBackend {
    pub fn new(disk: Disk) -> Self {
        FaultyBackend {
            disk: Arc::new(Mutex::new(disk)),
            faults: Arc::new(Faults {
                write: Countdown::off(),
                sync: Countdown::off(),
                set_len: Countdown::off(),
            }),
        }
    }

    /// What survives a power cut: the bytes of the last sync.
    pub fn power_cut_image(&self) -> Disk {
        let synced = self.disk.lock().unwrap().synced.clone();
        Disk {
            live: synced.clone(),
            synced,
        }
    }

    /// What survives a process kill: every byte written.
    pub fn process_kill_image(&self) -> Disk {
        let live = self.disk.lock().unwrap().live.clone();
        Disk {
            live: live.clone(),
            synced: live,
        }
    }
}

fn injected() -> io::Error {
    io::Error::other("injected fault")
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.disk.lock().unwrap().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let disk = self.disk.lock().unwrap();
        let start = offset as usize;
        let src = disk
            .live
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.faults.set_len.fails() {
            return Err(injected());
        }
        self.disk.lock().unwrap().live.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        if self.faults.sync.fails() {
            return Err(injected());
        }
        let mut disk = self.disk.lock().unwrap();
        disk.synced = disk.live.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if self.faults.write.fails() {
            return Err(injected());
        }
        let mut disk = self.disk.lock().unwrap();
        let start = offset as usize;
        let dst = disk
            .live
            .get_mut(start..start + data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "write past end"))?;
        dst.copy_from_slice(data);
        Ok(())
    }
}
