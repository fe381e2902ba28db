//! The account domain's pure parts: ID numbers, request bodies, masking.

use pension_gateway::accounts::identity::{
    check_char, mask_name, mask_tail, normalize_id_number, IdNumberError,
};
use pension_gateway::accounts::AccountQuery;
use proptest::prelude::*;

#[test]
fn id_numbers() {
    // GB 11643 worked example.
    assert_eq!(check_char(b"11010519491231002"), Some(b'X'));
    assert_eq!(
        normalize_id_number("11010519491231002x").unwrap(),
        "11010519491231002X"
    );
    assert_eq!(
        normalize_id_number("110108200002291357").unwrap(),
        "110108200002291357"
    ); // 29 Feb 2000
    assert_eq!(
        normalize_id_number("110108190002291350"),
        Err(IdNumberError::BirthDate)
    ); // 1900 not leap
    assert_eq!(
        normalize_id_number("110105194912310021"),
        Err(IdNumberError::CheckDigit)
    );
    assert_eq!(
        normalize_id_number("11010519491231002"),
        Err(IdNumberError::Format)
    );
    assert_eq!(
        normalize_id_number("1101051949123100２X"),
        Err(IdNumberError::Format)
    );
    assert_eq!(
        normalize_id_number("11010519491331002X"),
        Err(IdNumberError::BirthDate)
    );
    assert_eq!(normalize_id_number(""), Err(IdNumberError::Format));
}

#[test]
fn masking() {
    assert_eq!(mask_name("张三"), "张*");
    assert_eq!(mask_name(""), "");
    assert_eq!(mask_tail("13800000001"), "…0001");
    let q = AccountQuery::parse(r#"{"user_true_name":"张三","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.as_bytes()).unwrap();
    let shown = format!("{q:?}");
    assert!(
        !shown.contains("三") && !shown.contains("110105"),
        "{shown}"
    );
}

#[test]
fn body_rules() {
    let ok = r#"{"user_true_name":" 张三 ","user_identify_card_num":"11010519491231002X","corpno":"weibao","extra":1}"#;
    let q = AccountQuery::parse(ok.as_bytes()).unwrap();
    assert_eq!(q.name, "张三");
    assert_eq!(q.session_id, None);
    let long = "名".repeat(65);
    for bad in [
        format!(r#"{{"user_true_name":"{long}","user_identify_card_num":"11010519491231002X","corpno":"weibao"}}"#),
        r#"{"user_true_name":"a\u0000b","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.to_string(),
        r#"{"session_id":"has space","user_true_name":"a","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.to_string(),
        r#"{"user_true_name":null,"user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.to_string(),
    ] {
        assert!(AccountQuery::parse(bad.as_bytes()).is_err(), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), s in "\\PC{0,40}") {
        let _ = AccountQuery::parse(&bytes);
        let _ = normalize_id_number(&s);
        let _ = mask_name(&s);
        let _ = mask_tail(&s);
    }

    #[test]
    fn valid_ids_round_trip(body in "[1-6][0-9]{5}(19[0-9]{2}|20[01][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}") {
        let c = check_char(body.as_bytes()).unwrap();
        let id = format!("{}{}", body, char::from(c));
        prop_assert_eq!(normalize_id_number(&id).unwrap(), id.clone());
        prop_assert_eq!(normalize_id_number(&id.to_lowercase()).unwrap(), id.clone());
        // Any other check character is refused.
        let wrong = if c == b'0' { '1' } else { '0' };
        let wrong_id = format!("{}{}", body, wrong);
        prop_assert!(normalize_id_number(&wrong_id).is_err());
    }
}
