//! The handles the C interface hands out: opaque numbers, never addresses, looked up in one
//! table. A closed, forged or foreign handle is an error code, not a wild pointer; closing a
//! device closes its sessions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::codes::SdfError;
use crate::device::{Device, Session};

struct Table {
    next: usize,
    devices: BTreeMap<usize, Arc<Device>>,
    /// Each session with the handle of its device.
    sessions: BTreeMap<usize, (usize, Arc<Session>)>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    next: 1,
    devices: BTreeMap::new(),
    sessions: BTreeMap::new(),
});

fn table() -> MutexGuard<'static, Table> {
    // Every update below is complete before anything can panic; a poisoned lock is usable.
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    fn issue(&mut self) -> usize {
        let handle = self.next;
        // Never 0 (the null handle); the table would run out of memory long before wrapping.
        self.next = self.next.wrapping_add(1).max(1);
        handle
    }
}

/// Registers an open device; its handle.
pub fn add_device(device: Arc<Device>) -> usize {
    let mut table = table();
    let handle = table.issue();
    table.devices.insert(handle, device);
    handle
}

/// The open device of `handle`.
pub fn device(handle: usize) -> Result<Arc<Device>, SdfError> {
    table()
        .devices
        .get(&handle)
        .cloned()
        .ok_or(SdfError::OpenDevice)
}

/// Closes the device of `handle` and every session on it.
pub fn remove_device(handle: usize) -> Result<(), SdfError> {
    let mut table = table();
    table.devices.remove(&handle).ok_or(SdfError::OpenDevice)?;
    table.sessions.retain(|_, (device, _)| *device != handle);
    Ok(())
}

/// Registers a session opened on the device of `device`; its handle.
pub fn add_session(device: usize, session: Session) -> Result<usize, SdfError> {
    let mut table = table();
    if !table.devices.contains_key(&device) {
        // The device was closed while the session was being opened.
        return Err(SdfError::OpenDevice);
    }
    let handle = table.issue();
    table.sessions.insert(handle, (device, Arc::new(session)));
    Ok(handle)
}

/// The open session of `handle`.
pub fn session(handle: usize) -> Result<Arc<Session>, SdfError> {
    table()
        .sessions
        .get(&handle)
        .map(|(_, session)| Arc::clone(session))
        .ok_or(SdfError::OpenSession)
}

/// Closes the session of `handle`.
pub fn remove_session(handle: usize) -> Result<(), SdfError> {
    table()
        .sessions
        .remove(&handle)
        .map(|_| ())
        .ok_or(SdfError::OpenSession)
}
