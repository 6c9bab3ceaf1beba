//! Free space in a filesystem: what the disk guard, `/health`, the dashboard and `doctor` report.

/// Free space available to us in `path`'s filesystem, in MB.
pub fn free_mb(path: &std::path::Path) -> Option<u64> {
    free_bytes(path).map(|b| b / 1_000_000)
}

pub fn free_gb(path: &std::path::Path) -> Option<f64> {
    free_bytes(path).map(|b| (b as f64 / 1e9 * 10.0).round() / 10.0)
}

fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
