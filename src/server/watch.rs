//! File polling: the key manifest and the TLS certificate and key files are checked every
//! `keys.watch_interval_secs` for a change of modification time, size or inode (a rename over
//! the file shows too), and a change triggers the matching reload.

use std::path::Path;

/// What identifies one version of a file: modification time, size and inode. `None`: missing.
pub type FileStamp = Option<(Option<std::time::SystemTime>, u64, u64)>;

/// The stamp of `p` now.
pub fn file_stamp(p: &Path) -> FileStamp {
    let m = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok(), m.len(), ino))
}

/// Calls `poll` every `interval_secs` (never when 0) on the actix runtime.
pub(super) fn spawn_poll(interval_secs: u64, poll: impl Fn() + 'static) {
    if interval_secs == 0 {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval_secs));
        // The first tick is immediate: the files were just loaded.
        tick.tick().await;
        loop {
            tick.tick().await;
            poll();
        }
    });
}
