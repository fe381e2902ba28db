//! `docs/configuration.md` is the settings' own documentation: its tables are built from the
//! doc comments of the settings structs in `src/config.rs`, the production defaults
//! (`Settings::default()`) and the demo's where they differ (`Settings::demo()`), and this test fails when the file and the code disagree, so the
//! reference cannot drift. After changing a setting, regenerate it:
//!
//! ```sh
//! UPDATE_CONFIG_DOC=1 cargo test --test it config::doc
//! ```

use std::path::Path;

use pension_gateway::config::Settings;

const BEGIN: &str = "<!-- BEGIN settings: generated from the doc comments in src/config.rs; \
                     regenerate with `UPDATE_CONFIG_DOC=1 cargo test --test it config::doc` -->";
const END: &str = "<!-- END settings -->";

/// The doc comment of an item, one line per `///` line, outer spaces trimmed.
fn doc_lines(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Rustdoc markup made plain Markdown: intra-doc links lose their targets.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[close + 1..];
        if rest.starts_with('(') {
            if let Some(end) = rest.find(')') {
                rest = &rest[end + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A default value as it would be written in the TOML file.
fn toml_value(value: Option<&toml::Value>) -> String {
    match value {
        None => "unset".to_string(),
        Some(v) => format!("`{v}`"),
    }
}

fn generated_tables() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/config.rs")).expect("src/config.rs");
    let file = syn::parse_file(&source).expect("src/config.rs parses");
    let structs: Vec<&syn::ItemStruct> = file
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Struct(s) => Some(s),
            _ => None,
        })
        .collect();
    let find = |name: &str| structs.iter().find(|s| s.ident == name).copied();
    let defaults = toml::Value::try_from(Settings::default()).expect("defaults serialise");
    let demo = toml::Value::try_from(Settings::demo()).expect("demo settings serialise");

    let settings = find("Settings").expect("struct Settings");
    let mut out = String::new();
    for section in &settings.fields {
        let name = section.ident.as_ref().expect("named field").to_string();
        let syn::Type::Path(ty) = &section.ty else {
            panic!("section {name} is not a struct type");
        };
        let ty = ty
            .path
            .segments
            .last()
            .expect("type name")
            .ident
            .to_string();
        let body = find(&ty).unwrap_or_else(|| panic!("struct {ty} of [{name}] in src/config.rs"));
        out.push_str(&format!("\n## `[{name}]`\n\n"));
        // The struct's doc, without the bare "`[section]`" heading some of them start with.
        let intro: Vec<String> = doc_lines(&body.attrs)
            .into_iter()
            .map(|l| l.replacen(&format!("`[{name}]`:"), "", 1))
            .map(|l| l.replacen(&format!("`[{name}]`"), "", 1).trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if intro.is_empty() {
            out.push_str(&plain(&doc_lines(&section.attrs).join(" ")));
        } else {
            let mut intro = intro.join(" ");
            if let Some(first) = intro.get(..1) {
                intro = first.to_uppercase() + &intro[1..];
            }
            out.push_str(&plain(&intro));
        }
        out.push_str("\n\n| key | default | meaning |\n|---|---|---|\n");
        for field in &body.fields {
            let key = field.ident.as_ref().expect("named field").to_string();
            let doc = plain(&doc_lines(&field.attrs).join(" ")).replace('|', "\\|");
            assert!(!doc.is_empty(), "{name}.{key} has no doc comment");
            let default = defaults.get(&name).and_then(|s| s.get(&key));
            let mut shown = toml_value(default);
            let in_demo = demo.get(&name).and_then(|s| s.get(&key));
            if in_demo != default {
                shown.push_str(&format!(" (demo: {})", toml_value(in_demo)));
            }
            out.push_str(&format!("| `{name}.{key}` | {shown} | {doc} |\n"));
        }
    }
    out
}

#[test]
fn configuration_reference_matches_the_settings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/configuration.md lacks the generated-section markers");
    };
    let current = &doc[begin + BEGIN.len()..end];
    let wanted = format!("{}\n", generated_tables());
    if current == wanted {
        return;
    }
    if std::env::var_os("UPDATE_CONFIG_DOC").is_some() {
        let updated = format!("{}{BEGIN}{wanted}{}", &doc[..begin], &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/configuration.md");
        return;
    }
    let first = current
        .lines()
        .zip(wanted.lines())
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("\n  file: {a}\n  code: {b}"))
        .unwrap_or_else(|| " (one has more lines)".into());
    panic!(
        "docs/configuration.md is out of date with src/config.rs; first difference:{first}\n\
         regenerate: UPDATE_CONFIG_DOC=1 cargo test --test it config::doc"
    );
}
