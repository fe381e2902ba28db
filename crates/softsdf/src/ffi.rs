//! The GM/T 0018 C functions. Everything here translates: handles to table entries
//! (the handle table), caller buffers to slices and structures, results to return codes.
//! This is the crate's only `unsafe`: reading and writing memory the caller passed by pointer.
//! Handles are numbers, never dereferenced. A panic never crosses into C: it becomes
//! `SDR_UNKNOWERR`.
#![expect(
    unsafe_code,
    reason = "a C interface reads and writes the caller's buffers through raw pointers"
)]
#![allow(
    non_snake_case,
    reason = "the exported names are the standard's (SDF_OpenDevice, ...)"
)]

use std::ffi::{c_int, c_uint, c_void};
use std::panic::AssertUnwindSafe;

use crate::codes::{SdfError, SDR_OK};
use crate::device::{Config, Device};
use crate::faults::Op;
use crate::handles;
use crate::layout::{DeviceInfo, EccRefPublicKey, EccSignature};

/// Runs `body`, turning its result (or a panic) into the standard's return code.
fn guarded(body: impl FnOnce() -> Result<(), SdfError>) -> c_int {
    let result = std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(Err(SdfError::Unknown));
    // Codes are below 2^31 (SDR_BASE + a small number), or the injected code as configured.
    (match result {
        Ok(()) => SDR_OK,
        Err(e) => e.code(),
    }) as c_int
}

/// The table number a handle carries.
fn number(handle: *mut c_void) -> usize {
    handle.addr()
}

/// A handle carrying a table number (a pointer never dereferenced).
fn handle(number: usize) -> *mut c_void {
    std::ptr::without_provenance_mut(number)
}

/// The caller's input buffer (`len == 0` allows a null pointer).
///
/// # Safety
/// A non-null `ptr` must point to `len` readable bytes that stay valid and unmodified for `'a`.
unsafe fn bytes_in<'a>(ptr: *const u8, len: c_uint) -> Result<&'a [u8], SdfError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(SdfError::InArg);
    }
    let len = usize::try_from(len).map_err(|_| SdfError::InArg)?;
    // SAFETY: non-null, and the caller guarantees `len` readable bytes for 'a (the contract
    // above, passed on from the exported function's contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The caller's output buffer (`len == 0` allows a null pointer).
///
/// # Safety
/// A non-null `ptr` must point to `len` writable bytes, not aliased elsewhere, valid for `'a`.
unsafe fn bytes_out<'a>(ptr: *mut u8, len: c_uint) -> Result<&'a mut [u8], SdfError> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(SdfError::OutArg);
    }
    let len = usize::try_from(len).map_err(|_| SdfError::OutArg)?;
    // SAFETY: non-null, and the caller guarantees `len` writable, unaliased bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Reads a structure from the caller, at any alignment (vendors declare them packed).
///
/// # Safety
/// A non-null `ptr` must point to `size_of::<T>()` readable bytes.
unsafe fn read_in<T: Copy>(ptr: *const T) -> Result<T, SdfError> {
    if ptr.is_null() {
        return Err(SdfError::InArg);
    }
    // SAFETY: non-null and readable per the contract; `T` is plain bytes and integers, so any
    // bit pattern is a value; `read_unaligned` needs no alignment.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Writes a structure to the caller, at any alignment.
///
/// # Safety
/// A non-null `ptr` must point to `size_of::<T>()` writable bytes.
unsafe fn write_out<T>(ptr: *mut T, value: T) -> Result<(), SdfError> {
    if ptr.is_null() {
        return Err(SdfError::OutArg);
    }
    // SAFETY: non-null and writable per the contract; `write_unaligned` needs no alignment and
    // drops nothing (the targets are plain data).
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// `SDF_OpenDevice`: opens the device on the key directory `SOFTSDF_DIR`.
///
/// # Safety
/// `phDeviceHandle` must be null or point to a writable `void *`.
#[no_mangle]
pub unsafe extern "C" fn SDF_OpenDevice(phDeviceHandle: *mut *mut c_void) -> c_int {
    guarded(|| {
        if phDeviceHandle.is_null() {
            return Err(SdfError::OutArg);
        }
        let device = Device::open(Config::from_env()?)?;
        let number = handles::add_device(device);
        // SAFETY: non-null, writable per this function's contract.
        unsafe { write_out(phDeviceHandle, handle(number)) }
    })
}

/// `SDF_CloseDevice`: closes the device and its sessions.
///
/// # Safety
/// None beyond the C calling convention: the handle is looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn SDF_CloseDevice(hDeviceHandle: *mut c_void) -> c_int {
    guarded(|| {
        handles::device(number(hDeviceHandle))?.gate(Op::CloseDevice)?;
        handles::remove_device(number(hDeviceHandle))
    })
}

/// `SDF_OpenSession`.
///
/// # Safety
/// `phSessionHandle` must be null or point to a writable `void *`.
#[no_mangle]
pub unsafe extern "C" fn SDF_OpenSession(
    hDeviceHandle: *mut c_void,
    phSessionHandle: *mut *mut c_void,
) -> c_int {
    guarded(|| {
        if phSessionHandle.is_null() {
            return Err(SdfError::OutArg);
        }
        let device_number = number(hDeviceHandle);
        let session = handles::device(device_number)?.open_session()?;
        let session_number = handles::add_session(device_number, session)?;
        // SAFETY: non-null, writable per this function's contract.
        unsafe { write_out(phSessionHandle, handle(session_number)) }
    })
}

/// `SDF_CloseSession`: drops the session's access rights and hash.
///
/// # Safety
/// None beyond the C calling convention: the handle is looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn SDF_CloseSession(hSessionHandle: *mut c_void) -> c_int {
    guarded(|| {
        handles::session(number(hSessionHandle))?
            .device()
            .gate(Op::CloseSession)?;
        handles::remove_session(number(hSessionHandle))
    })
}

/// `SDF_GetDeviceInfo`.
///
/// # Safety
/// `pstDeviceInfo` must be null or point to a writable `DEVICEINFO` (100 bytes).
#[no_mangle]
pub unsafe extern "C" fn SDF_GetDeviceInfo(
    hSessionHandle: *mut c_void,
    pstDeviceInfo: *mut DeviceInfo,
) -> c_int {
    guarded(|| {
        let info = handles::session(number(hSessionHandle))?.device_info()?;
        // SAFETY: null or writable per this function's contract (null is refused).
        unsafe { write_out(pstDeviceInfo, info) }
    })
}

/// `SDF_GenerateRandom`.
///
/// # Safety
/// `pucRandom` must be null or point to `uiLength` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn SDF_GenerateRandom(
    hSessionHandle: *mut c_void,
    uiLength: c_uint,
    pucRandom: *mut u8,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        // SAFETY: null or `uiLength` writable bytes per this function's contract.
        let out = unsafe { bytes_out(pucRandom, uiLength) }?;
        session.generate_random(out)
    })
}

/// `SDF_GetPrivateKeyAccessRight`: grants the session the use of key `uiKeyIndex` when the
/// password matches the key's password file.
///
/// # Safety
/// `pucPassword` must be null or point to `uiPwdLength` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn SDF_GetPrivateKeyAccessRight(
    hSessionHandle: *mut c_void,
    uiKeyIndex: c_uint,
    pucPassword: *const u8,
    uiPwdLength: c_uint,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        // SAFETY: null or `uiPwdLength` readable bytes per this function's contract.
        let password = unsafe { bytes_in(pucPassword, uiPwdLength) }?;
        session.get_access_right(uiKeyIndex, password)
    })
}

/// `SDF_ReleasePrivateKeyAccessRight`.
///
/// # Safety
/// None beyond the C calling convention: the handle is looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn SDF_ReleasePrivateKeyAccessRight(
    hSessionHandle: *mut c_void,
    uiKeyIndex: c_uint,
) -> c_int {
    guarded(|| handles::session(number(hSessionHandle))?.release_access_right(uiKeyIndex))
}

/// `SDF_ExportSignPublicKey_ECC`.
///
/// # Safety
/// `pucPublicKey` must be null or point to a writable `ECCrefPublicKey` (132 bytes).
#[no_mangle]
pub unsafe extern "C" fn SDF_ExportSignPublicKey_ECC(
    hSessionHandle: *mut c_void,
    uiKeyIndex: c_uint,
    pucPublicKey: *mut EccRefPublicKey,
) -> c_int {
    guarded(|| {
        let key = handles::session(number(hSessionHandle))?.export_sign_public_key(uiKeyIndex)?;
        // SAFETY: null or writable per this function's contract (null is refused).
        unsafe { write_out(pucPublicKey, key) }
    })
}

/// `SDF_InternalSign_ECC`: signs the 32-byte digest e = SM3(Z‖M) with key `uiISKIndex`.
///
/// # Safety
/// `pucData` must be null or point to `uiDataLength` readable bytes; `pucSignature` null or a
/// writable `ECCSignature` (128 bytes).
#[no_mangle]
pub unsafe extern "C" fn SDF_InternalSign_ECC(
    hSessionHandle: *mut c_void,
    uiISKIndex: c_uint,
    pucData: *const u8,
    uiDataLength: c_uint,
    pucSignature: *mut EccSignature,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        if pucSignature.is_null() {
            return Err(SdfError::OutArg);
        }
        // SAFETY: null or `uiDataLength` readable bytes per this function's contract.
        let digest = unsafe { bytes_in(pucData, uiDataLength) }?;
        let signature = session.internal_sign(uiISKIndex, digest)?;
        // SAFETY: non-null, writable per this function's contract.
        unsafe { write_out(pucSignature, signature) }
    })
}

/// `SDF_InternalVerify_ECC`: verifies a signature over a 32-byte digest with key
/// `uiIPKIndex`'s public key.
///
/// # Safety
/// `pucData` must be null or point to `uiDataLength` readable bytes; `pucSignature` null or a
/// readable `ECCSignature`.
#[no_mangle]
pub unsafe extern "C" fn SDF_InternalVerify_ECC(
    hSessionHandle: *mut c_void,
    uiIPKIndex: c_uint,
    pucData: *const u8,
    uiDataLength: c_uint,
    pucSignature: *const EccSignature,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        // SAFETY: null or `uiDataLength` readable bytes per this function's contract.
        let digest = unsafe { bytes_in(pucData, uiDataLength) }?;
        // SAFETY: null or a readable ECCSignature per this function's contract.
        let signature = unsafe { read_in(pucSignature) }?;
        session.internal_verify(uiIPKIndex, digest, &signature)
    })
}

/// `SDF_ExternalVerify_ECC`: verifies a signature over a 32-byte digest with the given public
/// key (`uiAlgID` must be `SGD_SM2_1`).
///
/// # Safety
/// `pucPublicKey` and `pucSignature` must be null or readable structures; `pucDataInput` null
/// or `uiInputLength` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn SDF_ExternalVerify_ECC(
    hSessionHandle: *mut c_void,
    uiAlgID: c_uint,
    pucPublicKey: *const EccRefPublicKey,
    pucDataInput: *const u8,
    uiInputLength: c_uint,
    pucSignature: *const EccSignature,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        // SAFETY: null or a readable ECCrefPublicKey per this function's contract.
        let public_key = unsafe { read_in(pucPublicKey) }?;
        // SAFETY: null or `uiInputLength` readable bytes per this function's contract.
        let digest = unsafe { bytes_in(pucDataInput, uiInputLength) }?;
        // SAFETY: null or a readable ECCSignature per this function's contract.
        let signature = unsafe { read_in(pucSignature) }?;
        session.external_verify(uiAlgID, &public_key, digest, &signature)
    })
}

/// `SDF_HashInit`: starts SM3 (`uiAlgID` `SGD_SM3`); with a public key, hashes Z for the ID
/// first (1234567812345678 when the ID is empty).
///
/// # Safety
/// `pucPublicKey` must be null or a readable `ECCrefPublicKey`; `pucID` null or `uiIDLength`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn SDF_HashInit(
    hSessionHandle: *mut c_void,
    uiAlgID: c_uint,
    pucPublicKey: *const EccRefPublicKey,
    pucID: *const u8,
    uiIDLength: c_uint,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        let public_key = if pucPublicKey.is_null() {
            None
        } else {
            // SAFETY: non-null, readable per this function's contract.
            Some(unsafe { read_in(pucPublicKey) }?)
        };
        // SAFETY: null or `uiIDLength` readable bytes per this function's contract.
        let id = unsafe { bytes_in(pucID, uiIDLength) }?;
        session.hash_init(uiAlgID, public_key.as_ref(), id)
    })
}

/// `SDF_HashUpdate`.
///
/// # Safety
/// `pucData` must be null or point to `uiDataLength` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn SDF_HashUpdate(
    hSessionHandle: *mut c_void,
    pucData: *const u8,
    uiDataLength: c_uint,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        // SAFETY: null or `uiDataLength` readable bytes per this function's contract.
        let data = unsafe { bytes_in(pucData, uiDataLength) }?;
        session.hash_update(data)
    })
}

/// `SDF_HashFinal`: writes the 32-byte digest and its length.
///
/// # Safety
/// `pucHash` must be null or point to 32 writable bytes; `puiHashLength` null or a writable
/// `unsigned int`.
#[no_mangle]
pub unsafe extern "C" fn SDF_HashFinal(
    hSessionHandle: *mut c_void,
    pucHash: *mut u8,
    puiHashLength: *mut c_uint,
) -> c_int {
    guarded(|| {
        let session = handles::session(number(hSessionHandle))?;
        if pucHash.is_null() || puiHashLength.is_null() {
            return Err(SdfError::OutArg);
        }
        let digest = session.hash_final()?;
        // SAFETY: non-null, 32 writable bytes per this function's contract.
        unsafe { write_out(pucHash.cast::<[u8; 32]>(), digest) }?;
        // SAFETY: non-null, writable per this function's contract.
        unsafe { write_out(puiHashLength, 32) }
    })
}
