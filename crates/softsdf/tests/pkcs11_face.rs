//! The PKCS#11 face called as a C client would: through the function list `C_GetFunctionList`
//! hands out. The standard's SM2 example key (GB/T 32918 annex) gives a known `CKA_EC_POINT`; a
//! signature over the annex digest verifies under it. One test function, because the device
//! reads the process environment (set once here).
#![expect(
    unsafe_code,
    reason = "calls the function list's `unsafe extern \"C\"` entries with raw pointers"
)]

use std::ptr;

use cryptoki_sys::*;
use sm2::dsa::signature::hazmat::PrehashVerifier;

const ANNEX_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const ANNEX_X: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
const ANNEX_E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";
const SM2: CK_MECHANISM_TYPE = 0x8002_0200;

#[test]
fn pkcs11_face_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let secret = sm2::SecretKey::from_slice(&hex::decode(ANNEX_D).unwrap()).unwrap();
    softsdf::provision(dir.path(), 7, &secret, b"unused").unwrap();
    softsdf::provision_token_pin(dir.path(), b"token-pin").unwrap();
    // The only test in this binary: no other thread reads the environment.
    std::env::set_var("SOFTSDF_DIR", dir.path());
    std::env::remove_var("SOFTSDF_P11_MECHANISMS");
    std::env::remove_var("SOFTSDF_P11_INPUT");

    // SAFETY: every pointer passed points to a live local of the declared type and size, or is
    // null where the standard allows it.
    unsafe {
        let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
        assert_eq!(softsdf::p11::C_GetFunctionList(&mut list), CKR_OK);
        let f = &*list;
        assert_eq!((f.version.major, f.version.minor), (2, 40));
        let mut slot_count: CK_ULONG = 0;
        assert_eq!(
            f.C_GetSlotList.unwrap()(CK_TRUE, ptr::null_mut(), &mut slot_count),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK);
        assert_eq!(
            f.C_Initialize.unwrap()(ptr::null_mut()),
            CKR_CRYPTOKI_ALREADY_INITIALIZED
        );
        assert_eq!(
            f.C_GetSlotList.unwrap()(CK_TRUE, ptr::null_mut(), &mut slot_count),
            CKR_OK
        );
        assert_eq!(slot_count, 1);
        let mut slot: CK_SLOT_ID = 0;
        assert_eq!(
            f.C_GetSlotList.unwrap()(CK_TRUE, &mut slot, &mut slot_count),
            CKR_OK
        );
        let mut info: CK_TOKEN_INFO = std::mem::zeroed();
        assert_eq!(f.C_GetTokenInfo.unwrap()(slot, &mut info), CKR_OK);
        assert_eq!(&info.label[..8], b"softsdf ");
        let mut mech_info: CK_MECHANISM_INFO = std::mem::zeroed();
        assert_eq!(
            f.C_GetMechanismInfo.unwrap()(slot, SM2, &mut mech_info),
            CKR_OK
        );
        assert_ne!(mech_info.flags & CKF_SIGN, 0);
        assert_eq!(
            f.C_GetMechanismInfo.unwrap()(slot, CKM_ECDSA, &mut mech_info),
            CKR_MECHANISM_INVALID
        );
        // Functions a signing client does not call.
        assert_eq!(
            f.C_InitToken.unwrap()(slot, ptr::null_mut(), 0, ptr::null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );

        let mut session: CK_SESSION_HANDLE = 0;
        assert_eq!(
            f.C_OpenSession.unwrap()(
                slot,
                CKF_SERIAL_SESSION,
                ptr::null_mut(),
                None,
                &mut session
            ),
            CKR_OK
        );
        let mut wrong = *b"nope";
        assert_eq!(
            f.C_Login.unwrap()(session, CKU_USER, wrong.as_mut_ptr(), 4),
            CKR_PIN_INCORRECT
        );
        let mut pin = *b"token-pin";
        assert_eq!(
            f.C_Login.unwrap()(session, CKU_USER, pin.as_mut_ptr(), 9),
            CKR_OK
        );

        // The keys by label: public and private object.
        let mut label = *b"sign-7";
        let mut template = [CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr().cast(),
            ulValueLen: 6,
        }];
        assert_eq!(
            f.C_FindObjectsInit.unwrap()(session, template.as_mut_ptr(), 1),
            CKR_OK
        );
        let mut found = [0 as CK_OBJECT_HANDLE; 4];
        let mut n: CK_ULONG = 0;
        assert_eq!(
            f.C_FindObjects.unwrap()(session, found.as_mut_ptr(), 4, &mut n),
            CKR_OK
        );
        assert_eq!(n, 2);
        assert_eq!(f.C_FindObjectsFinal.unwrap()(session), CKR_OK);
        let (public, private) = (found[0], found[1]);

        // CKA_EC_POINT, two calls: the length, then the value (DER OCTET STRING of 04‖x‖y).
        let mut attr = [CK_ATTRIBUTE {
            type_: CKA_EC_POINT,
            pValue: ptr::null_mut(),
            ulValueLen: 0,
        }];
        assert_eq!(
            f.C_GetAttributeValue.unwrap()(session, public, attr.as_mut_ptr(), 1),
            CKR_OK
        );
        assert_eq!(attr[0].ulValueLen, 67);
        let mut point = [0u8; 67];
        attr[0].pValue = point.as_mut_ptr().cast();
        assert_eq!(
            f.C_GetAttributeValue.unwrap()(session, public, attr.as_mut_ptr(), 1),
            CKR_OK
        );
        assert_eq!(point[..3], [0x04, 0x41, 0x04]);
        assert_eq!(hex::encode_upper(&point[3..35]), ANNEX_X);
        let mut value = [CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: ptr::null_mut(),
            ulValueLen: 0,
        }];
        assert_eq!(
            f.C_GetAttributeValue.unwrap()(session, private, value.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_SENSITIVE
        );

        // Signing the annex digest; ECDSA is not offered.
        let mut ecdsa = CK_MECHANISM {
            mechanism: CKM_ECDSA,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            f.C_SignInit.unwrap()(session, &mut ecdsa, private),
            CKR_MECHANISM_INVALID
        );
        let mut sm2_mech = CK_MECHANISM {
            mechanism: SM2,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            f.C_SignInit.unwrap()(session, &mut sm2_mech, public),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            f.C_SignInit.unwrap()(session, &mut sm2_mech, private),
            CKR_OK
        );
        let mut e = hex::decode(ANNEX_E).unwrap();
        let mut len: CK_ULONG = 0;
        assert_eq!(
            f.C_Sign.unwrap()(session, e.as_mut_ptr(), 32, ptr::null_mut(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 64);
        let mut sig = [0u8; 64];
        assert_eq!(
            f.C_Sign.unwrap()(session, e.as_mut_ptr(), 32, sig.as_mut_ptr(), &mut len),
            CKR_OK
        );
        let verifying =
            sm2::dsa::VerifyingKey::new("1234567812345678", secret.public_key()).unwrap();
        let signature = sm2::dsa::Signature::from_slice(&sig).unwrap();
        assert!(verifying.verify_prehash(&e, &signature).is_ok());
        e[0] ^= 1;
        assert!(verifying.verify_prehash(&e, &signature).is_err());

        assert_eq!(f.C_CloseSession.unwrap()(session), CKR_OK);
        assert_eq!(
            f.C_CloseSession.unwrap()(session),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK);
    }
}
