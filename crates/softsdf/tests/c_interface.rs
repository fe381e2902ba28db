//! The exported C functions called as a C client would: handles, pointers, structures and
//! return codes. One test function, because `SDF_OpenDevice` reads the process environment
//! (set once here, before any other thread could read it).
#![expect(
    unsafe_code,
    reason = "calls the exported `unsafe extern \"C\"` functions with raw pointers"
)]

use std::ffi::c_void;
use std::ptr;

use softsdf::codes::*;
use softsdf::ffi::*;
use softsdf::layout::{DeviceInfo, EccRefPublicKey, EccSignature};

const ANNEX_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const ANNEX_X: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
const ANNEX_E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";

fn code(c: i32) -> u32 {
    c as u32
}

#[test]
fn c_interface_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let secret = sm2::SecretKey::from_slice(&hex::decode(ANNEX_D).unwrap()).unwrap();
    softsdf::provision(dir.path(), 1, &secret, b"1234").unwrap();
    // The only test in this binary: no other thread reads the environment.
    std::env::set_var("SOFTSDF_DIR", dir.path());
    std::env::set_var("SOFTSDF_CONTROL", dir.path().join("control"));

    // SAFETY: every pointer passed is null (checked by the callee) or points
    // to a live local of the declared type and size.
    unsafe {
        assert_eq!(code(SDF_OpenDevice(ptr::null_mut())), SDR_OUTARGERR);
        let mut device: *mut c_void = ptr::null_mut();
        assert_eq!(code(SDF_OpenDevice(&mut device)), SDR_OK);
        assert!(!device.is_null());
        let mut session: *mut c_void = ptr::null_mut();
        assert_eq!(code(SDF_OpenSession(device, &mut session)), SDR_OK);

        // A forged handle is an error, not a crash.
        let forged = ptr::without_provenance_mut::<c_void>(0xdead_beef);
        let mut info: DeviceInfo = std::mem::zeroed();
        assert_eq!(code(SDF_GetDeviceInfo(forged, &mut info)), SDR_OPENSESSION);
        assert_eq!(code(SDF_GetDeviceInfo(session, &mut info)), SDR_OK);
        assert_eq!(&info.device_name[..7], b"softsdf");
        assert_eq!(
            code(SDF_GetDeviceInfo(session, ptr::null_mut())),
            SDR_OUTARGERR
        );

        let mut random = [0u8; 48];
        assert_eq!(
            code(SDF_GenerateRandom(session, 48, random.as_mut_ptr())),
            SDR_OK
        );
        assert_ne!(random, [0u8; 48]);

        // Public key export, at an odd address (vendors declare the structures packed).
        let mut buffer = [0u8; 1 + std::mem::size_of::<EccRefPublicKey>()];
        let unaligned = buffer.as_mut_ptr().add(1).cast::<EccRefPublicKey>();
        assert_eq!(
            code(SDF_ExportSignPublicKey_ECC(session, 1, unaligned)),
            SDR_OK
        );
        let public = unaligned.read_unaligned();
        assert_eq!(public.bits, 256);
        assert_eq!(public.x[..32], [0u8; 32]);
        assert_eq!(hex::encode_upper(&public.x[32..]), ANNEX_X);
        let mut none: EccRefPublicKey = std::mem::zeroed();
        assert_eq!(
            code(SDF_ExportSignPublicKey_ECC(session, 2, &mut none)),
            SDR_KEYNOTEXIST
        );

        // Signing: refused without the access right, refused with a wrong password.
        let e = hex::decode(ANNEX_E).unwrap();
        let mut signature: EccSignature = std::mem::zeroed();
        assert_eq!(
            code(SDF_InternalSign_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &mut signature
            )),
            SDR_PARDENY
        );
        assert_eq!(
            code(SDF_GetPrivateKeyAccessRight(
                session,
                1,
                b"12345".as_ptr(),
                5
            )),
            SDR_PRKRERR
        );
        assert_eq!(
            code(SDF_GetPrivateKeyAccessRight(
                session,
                1,
                b"1234".as_ptr(),
                4
            )),
            SDR_OK
        );
        assert_eq!(
            code(SDF_InternalSign_ECC(
                session,
                1,
                e.as_ptr(),
                31,
                &mut signature
            )),
            SDR_INARGERR
        );
        assert_eq!(
            code(SDF_InternalSign_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &mut signature
            )),
            SDR_OK
        );
        assert_eq!(signature.r[..32], [0u8; 32]);
        assert_eq!(
            code(SDF_ExternalVerify_ECC(
                session,
                SGD_SM2_1,
                &public,
                e.as_ptr(),
                32,
                &signature
            )),
            SDR_OK
        );
        assert_eq!(
            code(SDF_InternalVerify_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &signature
            )),
            SDR_OK
        );
        let mut tampered = signature;
        tampered.s[63] ^= 1;
        assert_eq!(
            code(SDF_InternalVerify_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &tampered
            )),
            SDR_VERIFYERR
        );

        // SM3 with Z over the public key and the default ID: the GB/T 32918.5 digest.
        let id = b"1234567812345678";
        assert_eq!(
            code(SDF_HashInit(session, SGD_SM3, &public, id.as_ptr(), 16)),
            SDR_OK
        );
        let message = b"message digest";
        assert_eq!(code(SDF_HashUpdate(session, message.as_ptr(), 14)), SDR_OK);
        let mut digest = [0u8; 32];
        let mut length = 0u32;
        assert_eq!(
            code(SDF_HashFinal(session, digest.as_mut_ptr(), &mut length)),
            SDR_OK
        );
        assert_eq!(
            (hex::encode_upper(digest), length),
            (ANNEX_E.to_owned(), 32)
        );

        // Injected failure through the control file, then recovery.
        std::fs::write(dir.path().join("control"), "fail = sign\n").unwrap();
        assert_eq!(
            code(SDF_InternalSign_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &mut signature
            )),
            SDR_COMMFAIL
        );
        std::fs::remove_file(dir.path().join("control")).unwrap();
        assert_eq!(
            code(SDF_InternalSign_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &mut signature
            )),
            SDR_OK
        );

        assert_eq!(code(SDF_ReleasePrivateKeyAccessRight(session, 1)), SDR_OK);
        assert_eq!(
            code(SDF_InternalSign_ECC(
                session,
                1,
                e.as_ptr(),
                32,
                &mut signature
            )),
            SDR_PARDENY
        );
        assert_eq!(code(SDF_CloseSession(session)), SDR_OK);
        assert_eq!(code(SDF_CloseSession(session)), SDR_OPENSESSION);

        // Closing the device closes its sessions.
        let mut second: *mut c_void = ptr::null_mut();
        assert_eq!(code(SDF_OpenSession(device, &mut second)), SDR_OK);
        assert_eq!(code(SDF_CloseDevice(device)), SDR_OK);
        assert_eq!(
            code(SDF_GenerateRandom(second, 4, random.as_mut_ptr())),
            SDR_OPENSESSION
        );
        assert_eq!(code(SDF_CloseDevice(device)), SDR_OPENDEVICE);
    }
}
