//! The calls into the vendor's library: its functions looked up once, and the device and
//! session handles it returns, each owned by a value that closes it on drop. This is the
//! crate's only `unsafe`. Soundness rests on three rules kept here:
//! - a handle is passed only to the library that issued it, only while open (the owning value
//!   exists, and a session keeps its device open);
//! - every buffer passed is owned by the caller of the function, and at least as large as the
//!   largest structure any profile describes ([`BUFFER_LEN`]);
//! - a session is used by one thread at a time (`&mut self`), as the standard requires.
#![expect(
    unsafe_code,
    reason = "loading a C library and calling its functions with raw pointers"
)]

use std::ffi::{c_int, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::SdfError;
use crate::profile::MAX_FIELD_LEN;

/// Bytes of every output buffer: the largest structure read (`DEVICEINFO`, 100 bytes;
/// `ECCrefPublicKey` with 64-byte fields, 132), with room to spare for a mistaken profile.
pub(crate) const BUFFER_LEN: usize = 4 + 2 * MAX_FIELD_LEN + 124;

type OpenDeviceFn = unsafe extern "C" fn(*mut *mut c_void) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type OpenSessionFn = unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> c_int;
type GetDeviceInfoFn = unsafe extern "C" fn(*mut c_void, *mut u8) -> c_int;
type GetAccessRightFn = unsafe extern "C" fn(*mut c_void, c_uint, *mut u8, c_uint) -> c_int;
type ReleaseAccessRightFn = unsafe extern "C" fn(*mut c_void, c_uint) -> c_int;
type ExportPublicKeyFn = unsafe extern "C" fn(*mut c_void, c_uint, *mut u8) -> c_int;
type InternalSignFn = unsafe extern "C" fn(*mut c_void, c_uint, *mut u8, c_uint, *mut u8) -> c_int;

/// The library and the functions the client uses.
pub(crate) struct Api {
    path: PathBuf,
    open_device: OpenDeviceFn,
    close_device: CloseFn,
    open_session: OpenSessionFn,
    close_session: CloseFn,
    get_device_info: Option<GetDeviceInfoFn>,
    get_access_right: GetAccessRightFn,
    release_access_right: ReleaseAccessRightFn,
    export_sign_public_key: ExportPublicKeyFn,
    internal_sign: InternalSignFn,
    /// Kept last and alive as long as the function pointers above are (they point into it).
    _library: libloading::Library,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("path", &self.path).finish()
    }
}

/// The standard's return code as a result.
fn check(function: &'static str, code: c_int) -> Result<(), SdfError> {
    match code {
        0 => Ok(()),
        // The standard's codes are unsigned; C returns them as `int`.
        code => Err(SdfError::Call {
            function,
            code: code as u32,
        }),
    }
}

impl Api {
    /// Loads the library at `path` and looks up the functions; a required one missing is an
    /// error naming it.
    pub(crate) fn load(path: &Path) -> Result<Arc<Self>, SdfError> {
        // SAFETY: loading runs the library's initialisers. The operator names this file as the
        // module vendor's SDF library; running its code is what the configuration asks for.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|source| SdfError::Load {
                path: path.to_path_buf(),
                source,
            })?;
        /// Looks up `name` as a function of type `T`.
        fn get<T: Copy>(
            library: &libloading::Library,
            path: &Path,
            name: &'static str,
        ) -> Result<T, SdfError> {
            let symbol = format!("{name}\0");
            // SAFETY: `T` is the standard's C signature for `name` (GM/T 0018-2012 §6); a
            // library that exports the name with another signature violates the standard,
            // which the profile cannot describe. The pointer is used only while `library`
            // lives (`Api` keeps both).
            unsafe { library.get::<T>(symbol.as_bytes()) }
                .map(|s| *s)
                .map_err(|_| SdfError::MissingFunction {
                    path: path.to_path_buf(),
                    symbol: name,
                })
        }
        let optional = get::<GetDeviceInfoFn>(&library, path, "SDF_GetDeviceInfo").ok();
        Ok(Arc::new(Api {
            path: path.to_path_buf(),
            open_device: get(&library, path, "SDF_OpenDevice")?,
            close_device: get(&library, path, "SDF_CloseDevice")?,
            open_session: get(&library, path, "SDF_OpenSession")?,
            close_session: get(&library, path, "SDF_CloseSession")?,
            get_device_info: optional,
            get_access_right: get(&library, path, "SDF_GetPrivateKeyAccessRight")?,
            release_access_right: get(&library, path, "SDF_ReleasePrivateKeyAccessRight")?,
            export_sign_public_key: get(&library, path, "SDF_ExportSignPublicKey_ECC")?,
            internal_sign: get(&library, path, "SDF_InternalSign_ECC")?,
            _library: library,
        }))
    }

    /// The library's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// An open device; closed on drop.
#[derive(Debug)]
pub(crate) struct DeviceHandle {
    api: Arc<Api>,
    raw: *mut c_void,
}

// SAFETY: the handle is an opaque token the library issued. The standard lets sessions of one
// device be opened and used from different threads; the token itself is never dereferenced
// here, only passed back to the library.
unsafe impl Send for DeviceHandle {}
// SAFETY: as above; `&DeviceHandle` only opens sessions, which the standard allows concurrently.
unsafe impl Sync for DeviceHandle {}

impl DeviceHandle {
    /// `SDF_OpenDevice`.
    pub(crate) fn open(api: &Arc<Api>) -> Result<Self, SdfError> {
        let mut raw: *mut c_void = std::ptr::null_mut();
        // SAFETY: `raw` is a live, writable `void *` for the call.
        check("SDF_OpenDevice", unsafe { (api.open_device)(&mut raw) })?;
        Ok(DeviceHandle {
            api: Arc::clone(api),
            raw,
        })
    }

    /// `SDF_OpenSession`; the session keeps this device open.
    pub(crate) fn open_session(self: &Arc<Self>) -> Result<SessionHandle, SdfError> {
        let mut raw: *mut c_void = std::ptr::null_mut();
        // SAFETY: `self.raw` is open (this value exists); `raw` is a live, writable `void *`.
        check("SDF_OpenSession", unsafe {
            (self.api.open_session)(self.raw, &mut raw)
        })?;
        Ok(SessionHandle {
            device: Arc::clone(self),
            raw,
        })
    }
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is open, and every session on it has been dropped (each holds an
        // `Arc` of this value). Closing twice cannot happen: drop runs once.
        let _ = unsafe { (self.api.close_device)(self.raw) };
    }
}

/// An open session; closed on drop. One user at a time: every call takes `&mut self`.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    device: Arc<DeviceHandle>,
    raw: *mut c_void,
}

// SAFETY: an opaque token the library issued; moving it to another thread is allowed by the
// standard as long as one thread uses it at a time, which `&mut self` on every call ensures.
// Not `Sync`.
unsafe impl Send for SessionHandle {}

impl SessionHandle {
    fn api(&self) -> &Api {
        &self.device.api
    }

    /// `SDF_GetDeviceInfo` into a zeroed buffer; `None` when the library does not export it.
    pub(crate) fn device_info(&mut self) -> Option<Result<[u8; BUFFER_LEN], SdfError>> {
        let function = self.api().get_device_info?;
        let mut out = [0u8; BUFFER_LEN];
        // SAFETY: the session is open; `out` is writable and larger than `DEVICEINFO`.
        let code = unsafe { function(self.raw, out.as_mut_ptr()) };
        Some(check("SDF_GetDeviceInfo", code).map(|()| out))
    }

    /// `SDF_GetPrivateKeyAccessRight`.
    pub(crate) fn get_access_right(&mut self, index: u32, password: &[u8]) -> Result<(), SdfError> {
        // The C prototype takes `unsigned char *`: hand it a copy it may do anything with.
        let mut copy = Zeroizing::new(password.to_vec());
        let len = c_uint::try_from(copy.len()).map_err(|_| SdfError::Call {
            function: "SDF_GetPrivateKeyAccessRight",
            code: 0x0100_001D,
        })?;
        // SAFETY: the session is open; `copy` holds `len` readable (and writable) bytes.
        let code =
            unsafe { (self.api().get_access_right)(self.raw, index, copy.as_mut_ptr(), len) };
        check("SDF_GetPrivateKeyAccessRight", code)
    }

    /// `SDF_ReleasePrivateKeyAccessRight`.
    pub(crate) fn release_access_right(&mut self, index: u32) -> Result<(), SdfError> {
        // SAFETY: the session is open.
        let code = unsafe { (self.api().release_access_right)(self.raw, index) };
        check("SDF_ReleasePrivateKeyAccessRight", code)
    }

    /// `SDF_ExportSignPublicKey_ECC` into a zeroed buffer.
    pub(crate) fn export_sign_public_key(
        &mut self,
        index: u32,
    ) -> Result<[u8; BUFFER_LEN], SdfError> {
        let mut out = [0u8; BUFFER_LEN];
        // SAFETY: the session is open; `out` is writable and larger than any `ECCrefPublicKey`.
        let code =
            unsafe { (self.api().export_sign_public_key)(self.raw, index, out.as_mut_ptr()) };
        check("SDF_ExportSignPublicKey_ECC", code).map(|()| out)
    }

    /// `SDF_InternalSign_ECC` of a 32-byte digest into a zeroed buffer.
    pub(crate) fn internal_sign(
        &mut self,
        index: u32,
        digest: &[u8; 32],
    ) -> Result<[u8; BUFFER_LEN], SdfError> {
        // The C prototype takes `unsigned char *`: hand it a copy.
        let mut input = *digest;
        let mut out = [0u8; BUFFER_LEN];
        // SAFETY: the session is open; `input` holds 32 readable bytes; `out` is writable and
        // larger than any `ECCSignature`.
        let code = unsafe {
            (self.api().internal_sign)(self.raw, index, input.as_mut_ptr(), 32, out.as_mut_ptr())
        };
        check("SDF_InternalSign_ECC", code).map(|()| out)
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is open (drop runs once), and its device is open (held by `Arc`).
        let _ = unsafe { (self.device.api.close_session)(self.raw) };
    }
}
