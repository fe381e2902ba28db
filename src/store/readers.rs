//! Point reads on a SQLite file without the blocking-pool hop.
//!
//! diesel-async runs every SQLite statement on tokio's blocking pool: a hand-off to another
//! thread and back (two wake-ups, two context switches) around a lookup that itself takes a few
//! microseconds from the page cache. The hot reads (account by digest, live session) instead run
//! right on the calling task's thread, on a small set of idle connections kept here. In WAL mode
//! a reader never waits for the writer, so such a read does not block on the audit writer's
//! commits; `busy_timeout` still bounds the rare wait (WAL recovery after a crash).

use std::sync::Mutex;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

use super::{DriverError, StoreError, Unavailable};

/// Idle read connections kept for reuse (more are opened under a burst, then closed).
const MAX_IDLE: usize = 8;

pub(crate) struct SqliteReaders {
    path: String,
    pragmas: &'static str,
    idle: Mutex<Vec<SqliteConnection>>,
}

impl SqliteReaders {
    pub(crate) fn new(path: String, pragmas: &'static str) -> Self {
        SqliteReaders {
            path,
            pragmas,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on an idle connection (opened when none is idle), inline.
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let mut c =
                    SqliteConnection::establish(&self.path).map_err(|e| Unavailable::Open {
                        what: "cannot open SQLite for reading",
                        source: DriverError::new(e),
                    })?;
                c.batch_execute(self.pragmas)
                    .map_err(|e| Unavailable::Open {
                        what: "cannot set up SQLite reader",
                        source: DriverError::new(e),
                    })?;
                c
            }
        };
        let res = f(&mut conn);
        if res.is_ok() {
            if let Ok(mut v) = self.idle.lock() {
                if v.len() < MAX_IDLE {
                    v.push(conn);
                }
            }
        }
        res
    }
}
