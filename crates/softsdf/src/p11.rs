//! The device's PKCS#11 face: the same key files and fault switches, reached through
//! `C_GetFunctionList` as a vendor's PKCS#11 library would be (by the gateway's `pkcs11`
//! backend, through the `cryptoki` binding). Only what a signing client calls is offered:
//! `C_Initialize`, `C_Finalize`, `C_GetFunctionList`, `C_GetSlotList`, `C_GetTokenInfo`,
//! `C_GetMechanismList`, `C_GetMechanismInfo`, `C_OpenSession`, `C_CloseSession`, `C_Login`,
//! `C_Logout`, `C_FindObjectsInit`, `C_FindObjects`, `C_FindObjectsFinal`,
//! `C_GetAttributeValue`, `C_SignInit`, `C_Sign`; every other entry answers
//! `CKR_FUNCTION_NOT_SUPPORTED`.
//!
//! One slot (1) holds one token, label `softsdf`, serial `SOFTSDF000000001`. Each key file
//! `sign-<i>.key` of `SOFTSDF_DIR` is a private key object and a public key object with
//! `CKA_LABEL` `sign-<i>` and `CKA_ID` the index as 4 bytes big-endian; `CKA_EC_POINT` is the
//! DER OCTET STRING of `04‖x‖y`. The user PIN is the file `token.pin` (0600). The device is
//! opened (`SOFTSDF_DIR`, fault switches) at each `C_OpenSession`.
//!
//! Environment, read at every call that uses it:
//! - `SOFTSDF_P11_MECHANISMS`: the mechanism codes the token lists (comma-separated, hex with
//!   `0x` or decimal); default `0x80020200`, the gateway's default SM2 profile. `0x1041`
//!   (`CKM_ECDSA`) alone makes it a token that is not SM2.
//! - `SOFTSDF_P11_INPUT`: `digest` (default: `C_Sign` takes the 32-byte e = SM3(Z‖M)) or
//!   `message` (it takes M and computes e with the default signer ID 1234567812345678).
#![expect(
    unsafe_code,
    reason = "a C interface reads and writes the caller's buffers through raw pointers"
)]
#![allow(
    non_snake_case,
    reason = "the exported names are the standard's (C_GetFunctionList, ...)"
)]

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cryptoki_sys::*;

use crate::codes::SdfError;
use crate::device::{Config, Device, Session};

/// The one slot.
pub const SLOT: CK_SLOT_ID = 1;
/// The mechanisms listed when `SOFTSDF_P11_MECHANISMS` is not set.
pub const DEFAULT_MECHANISM: CK_MECHANISM_TYPE = 0x8002_0200;
/// The token's label.
pub const TOKEN_LABEL: &str = "softsdf";
/// The token's serial number.
pub const TOKEN_SERIAL: &str = "SOFTSDF000000001";

static INITIALIZED: AtomicBool = AtomicBool::new(false);
/// Login is per application in PKCS#11: one `C_Login` logs every session in.
static LOGGED_IN: AtomicBool = AtomicBool::new(false);
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// What a PKCS#11 session holds between calls.
struct P11Session {
    device: Arc<Device>,
    session: Session,
    found: Vec<CK_OBJECT_HANDLE>,
    /// The key index of the signature begun by `C_SignInit`.
    signing: Option<u32>,
}

type Table = Mutex<HashMap<CK_SESSION_HANDLE, Arc<Mutex<P11Session>>>>;

fn table() -> MutexGuard<'static, HashMap<CK_SESSION_HANDLE, Arc<Mutex<P11Session>>>> {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn session(handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<P11Session>>, CK_RV> {
    if !INITIALIZED.load(Ordering::Acquire) {
        return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    table()
        .get(&handle)
        .cloned()
        .ok_or(CKR_SESSION_HANDLE_INVALID)
}

fn lock(s: &Mutex<P11Session>) -> MutexGuard<'_, P11Session> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The PKCS#11 code for a device error.
fn rv(e: SdfError) -> CK_RV {
    match e {
        SdfError::OpenSession => CKR_SESSION_HANDLE_INVALID,
        SdfError::PermissionDenied => CKR_USER_NOT_LOGGED_IN,
        SdfError::KeyNotExist => CKR_KEY_HANDLE_INVALID,
        SdfError::AccessRight => CKR_PIN_INCORRECT,
        SdfError::InArg => CKR_ARGUMENTS_BAD,
        SdfError::Unknown => CKR_GENERAL_ERROR,
        _ => CKR_DEVICE_ERROR,
    }
}

/// Runs `body`, turning a panic into `CKR_GENERAL_ERROR`.
fn guarded(body: impl FnOnce() -> Result<(), CK_RV>) -> CK_RV {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(code)) => code,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

/// The mechanisms the token lists now.
pub fn mechanisms() -> Vec<CK_MECHANISM_TYPE> {
    let Ok(text) = std::env::var("SOFTSDF_P11_MECHANISMS") else {
        return vec![DEFAULT_MECHANISM];
    };
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => CK_MECHANISM_TYPE::from_str_radix(hex, 16),
                None => t.parse(),
            };
            parsed
                .inspect_err(|_| eprintln!("softsdf: SOFTSDF_P11_MECHANISMS: `{t}` is not a code"))
                .ok()
        })
        .collect()
}

fn message_input() -> bool {
    std::env::var("SOFTSDF_P11_INPUT").is_ok_and(|v| v == "message")
}

/// Object handles: `2i + 1` is key `i`'s public key, `2i + 2` its private key.
fn object(handle: CK_OBJECT_HANDLE) -> Option<(u32, bool)> {
    let index = u32::try_from(handle.checked_sub(1)? / 2).ok()?;
    Some((index, handle % 2 == 0))
}

fn handle_of(index: u32, private: bool) -> CK_OBJECT_HANDLE {
    CK_OBJECT_HANDLE::from(index) * 2 + if private { 2 } else { 1 }
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// Attribute `kind` of key `index`'s public or private object: `Ok(None)` when the object has
/// no such attribute.
fn attribute(
    s: &P11Session,
    index: u32,
    private: bool,
    kind: CK_ATTRIBUTE_TYPE,
) -> Result<Option<Vec<u8>>, CK_RV> {
    let yes = |b: bool| Some(vec![if b { CK_TRUE } else { CK_FALSE }]);
    Ok(match kind {
        CKA_CLASS => Some(ulong(if private {
            CKO_PRIVATE_KEY
        } else {
            CKO_PUBLIC_KEY
        })),
        CKA_KEY_TYPE => Some(ulong(CKK_EC)),
        CKA_LABEL => Some(format!("sign-{index}").into_bytes()),
        CKA_ID => Some(index.to_be_bytes().to_vec()),
        CKA_TOKEN => yes(true),
        CKA_PRIVATE => yes(private),
        CKA_SIGN if private => yes(true),
        CKA_VERIFY if !private => yes(true),
        CKA_SENSITIVE if private => yes(true),
        CKA_EXTRACTABLE if private => yes(false),
        CKA_VALUE if private => return Err(CKR_ATTRIBUTE_SENSITIVE),
        CKA_EC_POINT if !private => {
            let point = s.session.public_point(index).map_err(rv)?;
            let mut der = vec![0x04, 0x41, 0x04];
            der.extend_from_slice(&point.x);
            der.extend_from_slice(&point.y);
            Some(der)
        }
        _ => None,
    })
}

/// The caller's attribute template.
///
/// # Safety
/// `template` must be null with `count` 0, or point to `count` readable `CK_ATTRIBUTE`s whose
/// `pValue`s point to `ulValueLen` readable bytes.
unsafe fn template_in(
    template: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, CK_RV> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if template.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let count = usize::try_from(count).map_err(|_| CKR_ARGUMENTS_BAD)?;
    // SAFETY: non-null, `count` readable attributes per the contract.
    let attrs = unsafe { std::slice::from_raw_parts(template, count) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each value points to `ulValueLen` readable bytes per the contract.
            let value = unsafe { bytes_in(a.pValue as *const u8, a.ulValueLen) }?;
            Ok((a.type_, value.to_vec()))
        })
        .collect()
}

/// The caller's input bytes (`len == 0` allows null).
///
/// # Safety
/// A non-null `ptr` must point to `len` readable bytes valid for `'a`.
unsafe fn bytes_in<'a>(ptr: *const u8, len: CK_ULONG) -> Result<&'a [u8], CK_RV> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let len = usize::try_from(len).map_err(|_| CKR_ARGUMENTS_BAD)?;
    // SAFETY: non-null, `len` readable bytes for 'a per the contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The two-call output convention: with `out` null, the length needed is written; with a
/// buffer too small, `CKR_BUFFER_TOO_SMALL`; else the values are copied.
///
/// # Safety
/// `count` must be a valid `CK_ULONG` pointer; a non-null `out` must point to `*count`
/// writable `T`s.
unsafe fn list_out<T: Copy>(values: &[T], out: *mut T, count: *mut CK_ULONG) -> Result<(), CK_RV> {
    if count.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let n = CK_ULONG::try_from(values.len()).map_err(|_| CKR_GENERAL_ERROR)?;
    // SAFETY: `count` is valid per the contract.
    let room = unsafe { *count };
    // SAFETY: as above.
    unsafe { *count = n };
    if out.is_null() {
        return Ok(());
    }
    if room < n {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    // SAFETY: `out` has room for `room ≥ n` values per the contract.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
    Ok(())
}

/// A blank-padded text field.
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let n = text.len().min(N);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

unsafe extern "C" fn C_Initialize(_args: *mut std::ffi::c_void) -> CK_RV {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    } else {
        CKR_OK
    }
}

unsafe extern "C" fn C_Finalize(_reserved: *mut std::ffi::c_void) -> CK_RV {
    if !INITIALIZED.swap(false, Ordering::AcqRel) {
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    table().clear();
    LOGGED_IN.store(false, Ordering::Release);
    CKR_OK
}

/// `C_GetFunctionList`: the only exported symbol of the PKCS#11 face.
///
/// # Safety
/// `list` must be a valid pointer to write a pointer to.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    // SAFETY: non-null and writable per the contract. The list is never written through.
    unsafe { *list = std::ptr::addr_of!(FUNCTION_LIST).cast_mut() };
    CKR_OK
}

unsafe extern "C" fn C_GetSlotList(
    _token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guarded(|| {
        if !INITIALIZED.load(Ordering::Acquire) {
            return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
        }
        // SAFETY: the caller's pointers per PKCS#11's contract.
        unsafe { list_out(&[SLOT], list, count) }
    })
}

unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guarded(|| {
        if slot != SLOT {
            return Err(CKR_SLOT_ID_INVALID);
        }
        if info.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let version = CK_VERSION { major: 1, minor: 0 };
        let value = CK_TOKEN_INFO {
            label: padded(TOKEN_LABEL),
            manufacturerID: padded("pension-gateway softsdf"),
            model: padded("softsdf"),
            serialNumber: padded(TOKEN_SERIAL),
            flags: CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: CK_UNAVAILABLE_INFORMATION,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: CK_UNAVAILABLE_INFORMATION,
            ulMaxPinLen: 256,
            ulMinPinLen: 1,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: version,
            firmwareVersion: version,
            utcTime: padded(""),
        };
        // SAFETY: non-null and writable per the contract; unaligned-safe write.
        unsafe { info.write_unaligned(value) };
        Ok(())
    })
}

unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guarded(|| {
        if slot != SLOT {
            return Err(CKR_SLOT_ID_INVALID);
        }
        // SAFETY: the caller's pointers per PKCS#11's contract.
        unsafe { list_out(&mechanisms(), list, count) }
    })
}

unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guarded(|| {
        if slot != SLOT {
            return Err(CKR_SLOT_ID_INVALID);
        }
        if !mechanisms().contains(&kind) {
            return Err(CKR_MECHANISM_INVALID);
        }
        if info.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let value = CK_MECHANISM_INFO {
            ulMinKeySize: 256,
            ulMaxKeySize: 256,
            flags: CKF_SIGN,
        };
        // SAFETY: non-null and writable per the contract.
        unsafe { info.write_unaligned(value) };
        Ok(())
    })
}

unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut std::ffi::c_void,
    _notify: CK_NOTIFY,
    handle: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guarded(|| {
        if !INITIALIZED.load(Ordering::Acquire) {
            return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
        }
        if slot != SLOT {
            return Err(CKR_SLOT_ID_INVALID);
        }
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        if handle.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let config = Config::from_env().map_err(rv)?;
        let device = Device::open(config).map_err(rv)?;
        let session = device.open_session().map_err(rv)?;
        let number = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        table().insert(
            number,
            Arc::new(Mutex::new(P11Session {
                device,
                session,
                found: Vec::new(),
                signing: None,
            })),
        );
        // SAFETY: non-null and writable per the contract.
        unsafe { handle.write_unaligned(number) };
        Ok(())
    })
}

unsafe extern "C" fn C_CloseSession(handle: CK_SESSION_HANDLE) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        let _ = lock(&s).device.gate(crate::faults::Op::CloseSession);
        let mut table = table();
        table.remove(&handle);
        if table.is_empty() {
            // Closing the application's last session logs it out.
            LOGGED_IN.store(false, Ordering::Release);
        }
        Ok(())
    })
}

unsafe extern "C" fn C_Login(
    handle: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        if user != CKU_USER {
            return Err(CKR_USER_TYPE_INVALID);
        }
        if LOGGED_IN.load(Ordering::Acquire) {
            return Err(CKR_USER_ALREADY_LOGGED_IN);
        }
        // SAFETY: null or `pin_len` readable bytes per the contract.
        let pin = unsafe { bytes_in(pin, pin_len) }?;
        let device = Arc::clone(&lock(&s).device);
        device.check_token_pin(pin).map_err(rv)?;
        LOGGED_IN.store(true, Ordering::Release);
        Ok(())
    })
}

unsafe extern "C" fn C_Logout(handle: CK_SESSION_HANDLE) -> CK_RV {
    guarded(|| {
        session(handle)?;
        if !LOGGED_IN.swap(false, Ordering::AcqRel) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        Ok(())
    })
}

unsafe extern "C" fn C_FindObjectsInit(
    handle: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        // SAFETY: the caller's template per PKCS#11's contract.
        let wanted = unsafe { template_in(template, count) }?;
        let mut s = lock(&s);
        let logged_in = LOGGED_IN.load(Ordering::Acquire);
        let mut found = Vec::new();
        for index in s.device.key_indices() {
            for private in [false, true] {
                if private && !logged_in {
                    continue;
                }
                let mut matches = true;
                for (kind, value) in &wanted {
                    if attribute(&s, index, private, *kind).ok().flatten().as_ref() != Some(value) {
                        matches = false;
                        break;
                    }
                }
                if matches {
                    found.push(handle_of(index, private));
                }
            }
        }
        // Handed out in ascending order by `C_FindObjects` (popped from the end).
        found.reverse();
        s.found = found;
        Ok(())
    })
}

unsafe extern "C" fn C_FindObjects(
    handle: CK_SESSION_HANDLE,
    out: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        if count.is_null() || (out.is_null() && max > 0) {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let mut s = lock(&s);
        let mut n: CK_ULONG = 0;
        while n < max {
            let Some(h) = s.found.pop() else { break };
            // SAFETY: `out` has room for `max` handles per the contract; `n < max`.
            unsafe {
                out.add(usize::try_from(n).map_err(|_| CKR_GENERAL_ERROR)?)
                    .write_unaligned(h)
            };
            n += 1;
        }
        // SAFETY: non-null and writable per the contract.
        unsafe { count.write_unaligned(n) };
        Ok(())
    })
}

unsafe extern "C" fn C_FindObjectsFinal(handle: CK_SESSION_HANDLE) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        lock(&s).found.clear();
        Ok(())
    })
}

unsafe extern "C" fn C_GetAttributeValue(
    handle: CK_SESSION_HANDLE,
    object_handle: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        let s = lock(&s);
        let (index, private) = object(object_handle).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if !s.device.key_indices().contains(&index)
            || (private && !LOGGED_IN.load(Ordering::Acquire))
        {
            return Err(CKR_OBJECT_HANDLE_INVALID);
        }
        if template.is_null() && count > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let count = usize::try_from(count).map_err(|_| CKR_ARGUMENTS_BAD)?;
        let mut result = Ok(());
        for i in 0..count {
            // SAFETY: `template` points to `count` writable attributes per the contract.
            let a = unsafe { &mut *template.add(i) };
            match attribute(&s, index, private, a.type_) {
                Ok(Some(value)) => {
                    let len = CK_ULONG::try_from(value.len()).map_err(|_| CKR_GENERAL_ERROR)?;
                    if a.pValue.is_null() {
                        a.ulValueLen = len;
                    } else if a.ulValueLen < len {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        result = Err(CKR_BUFFER_TOO_SMALL);
                    } else {
                        // SAFETY: `pValue` has room for `ulValueLen ≥ len` bytes.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                value.as_ptr(),
                                a.pValue.cast::<u8>(),
                                value.len(),
                            )
                        };
                        a.ulValueLen = len;
                    }
                }
                Ok(None) => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_ATTRIBUTE_TYPE_INVALID);
                }
                Err(CKR_ATTRIBUTE_SENSITIVE) => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_ATTRIBUTE_SENSITIVE);
                }
                Err(code) => return Err(code),
            }
        }
        result
    })
}

unsafe extern "C" fn C_SignInit(
    handle: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        if mechanism.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: non-null and readable per the contract.
        let mechanism = unsafe { mechanism.read_unaligned() };
        if !LOGGED_IN.load(Ordering::Acquire) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let mut s = lock(&s);
        if s.signing.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let (index, private) = object(key).ok_or(CKR_KEY_HANDLE_INVALID)?;
        if !private || !s.device.key_indices().contains(&index) {
            return Err(CKR_KEY_HANDLE_INVALID);
        }
        if !mechanisms().contains(&mechanism.mechanism) {
            return Err(CKR_MECHANISM_INVALID);
        }
        s.session.grant_after_login(index).map_err(rv)?;
        s.signing = Some(index);
        Ok(())
    })
}

unsafe extern "C" fn C_Sign(
    handle: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    guarded(|| {
        let s = session(handle)?;
        let mut s = lock(&s);
        let index = s.signing.ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if signature_len.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: non-null, readable and writable per the contract.
        let room = unsafe { signature_len.read_unaligned() };
        // SAFETY: as above.
        unsafe { signature_len.write_unaligned(64) };
        if signature.is_null() {
            // A length query: the operation stays active.
            return Ok(());
        }
        if room < 64 {
            return Err(CKR_BUFFER_TOO_SMALL);
        }
        s.signing = None;
        // SAFETY: null or `data_len` readable bytes per the contract.
        let data = unsafe { bytes_in(data, data_len) }?;
        let raw = if message_input() {
            s.session.sign_message(index, data)
        } else if data.len() != 32 {
            return Err(CKR_DATA_LEN_RANGE);
        } else {
            s.session.sign_digest_raw(index, data)
        }
        .map_err(rv)?;
        // SAFETY: `signature` has room for `room ≥ 64` bytes per the contract.
        unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), signature, raw.len()) };
        Ok(())
    })
}

// Every function a signing client does not call: not supported.

/// Defines each named entry, with the parameter types the standard gives it, as a function
/// that answers `CKR_FUNCTION_NOT_SUPPORTED` (its arguments unread).
macro_rules! not_supported {
    ($($name:ident($($param:ty),* $(,)?);)*) => {
        $(
            unsafe extern "C" fn $name($(_: $param),*) -> CK_RV {
                CKR_FUNCTION_NOT_SUPPORTED
            }
        )*
    };
}

not_supported! {
    C_GetInfo(*mut CK_INFO);
    C_GetSlotInfo(CK_SLOT_ID, *mut CK_SLOT_INFO);
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR);
    C_InitPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG);
    C_SetPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR, CK_ULONG);
    C_CloseAllSessions(CK_SLOT_ID);
    C_GetSessionInfo(CK_SESSION_HANDLE, *mut CK_SESSION_INFO);
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(
        CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE,
    );
    C_CreateObject(CK_SESSION_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_CopyObject(
        CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE,
    );
    C_DestroyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ULONG);
    C_SetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG);
    C_EncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Encrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Decrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestInit(CK_SESSION_HANDLE, *mut CK_MECHANISM);
    C_Digest(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_DigestFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SignUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_SignFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Verify(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_VerifyFinal(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_GenerateKey(
        CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE,
    );
    C_GenerateKeyPair(
        CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_ATTRIBUTE,
        CK_ULONG, *mut CK_OBJECT_HANDLE, *mut CK_OBJECT_HANDLE,
    );
    C_WrapKey(
        CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE,
        *mut CK_ULONG,
    );
    C_UnwrapKey(
        CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG,
        *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE,
    );
    C_DeriveKey(
        CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG,
        *mut CK_OBJECT_HANDLE,
    );
    C_SeedRandom(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_GenerateRandom(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_GetFunctionStatus(CK_SESSION_HANDLE);
    C_CancelFunction(CK_SESSION_HANDLE);
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut std::ffi::c_void);
}

/// The function list `C_GetFunctionList` hands out (PKCS#11 2.40).
static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};
