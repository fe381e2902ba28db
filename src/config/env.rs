//! `GATEWAY__SECTION__KEY` environment overrides as a figment provider, typed by the field.
//!
//! figment's own `Env` provider guesses a value's type from its text, so a digit-only string
//! (`GATEWAY__WECHAT__SIGNER_ID=1234567812345678`) arrives as an integer and is refused by a
//! `String` field. Here the type comes from the field instead: the defaults are serialised once,
//! and each variable is read as the kind of value its field holds there:
//!
//! | field holds | variable is read as |
//! | --- | --- |
//! | text (also addresses, paths, enums) or nothing (`Option` unset) | the text, unchanged |
//! | boolean | `true` or `false` (any case); anything else is refused as not a boolean |
//! | integer | a decimal integer; anything else is refused as not a number |
//! | list of text | `[a, b, c]`: items split at commas and trimmed, `[]` empty; no item may contain a comma |
//!
//! Unknown sections and keys pass through untouched so that `deny_unknown_fields` refuses them
//! with the key's name; a variable that is not exactly `GATEWAY__SECTION__KEY` is refused here.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::ConfigError;

/// The prefix of every override variable.
pub const PREFIX: &str = "GATEWAY__";

/// The provider's name in figment's metadata.
pub const METADATA_NAME: &str = "environment variables GATEWAY__*";

/// Overrides read from the environment, already typed by the fields they set.
pub struct EnvOverrides {
    dict: Dict,
}

impl EnvOverrides {
    /// Reads the `GATEWAY__*` variables of `env`, typed by the shape of `defaults`.
    pub fn new<T: serde::Serialize>(
        defaults: &T,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let shape = Value::serialize(defaults)
            .map_err(|e| ConfigError(format!("internal: defaults do not serialise: {e}")))?;
        let mut dict = Dict::new();
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let [section, key] = parts.as_slice() else {
                return Err(ConfigError(format!(
                    "environment variable {name} must look like GATEWAY__SECTION__KEY"
                )));
            };
            let well_formed = |p: &str| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            };
            if !well_formed(section) || !well_formed(key) {
                return Err(ConfigError(format!(
                    "environment variable {name} must look like GATEWAY__SECTION__KEY"
                )));
            }
            let field = shape.find_ref(&format!("{section}.{key}"));
            let value = typed(&name, &raw, field)?;
            let sec = dict
                .entry(section.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            match sec {
                Value::Dict(_, d) => {
                    d.insert(key.clone(), value);
                }
                _ => return Err(ConfigError(format!("{name}: `{section}` is not a section"))),
            }
        }
        Ok(Self { dict })
    }
}

/// `raw` read as the kind of value `field` holds in the defaults.
fn typed(name: &str, raw: &str, field: Option<&Value>) -> Result<Value, ConfigError> {
    Ok(match field {
        Some(Value::Bool(..)) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::from(true),
            "false" => Value::from(false),
            // Left as text: serde refuses it naming the key and the expected type.
            _ => Value::from(raw.to_string()),
        },
        Some(Value::Num(..)) => {
            let t = raw.trim();
            if let Ok(u) = t.parse::<u64>() {
                Value::from(u)
            } else if let Ok(i) = t.parse::<i64>() {
                Value::from(i)
            } else {
                Value::from(raw.to_string())
            }
        }
        Some(Value::Array(..)) => Value::from(parse_list(name, raw)?),
        Some(Value::Dict(..)) => {
            return Err(ConfigError(format!(
                "environment variable {name} names a table, not a key"
            )))
        }
        _ => Value::from(raw.to_string()),
    })
}

/// `[a, b, c]` → the items, trimmed; `[]` → none.
fn parse_list(name: &str, raw: &str) -> Result<Vec<Value>, ConfigError> {
    let inner = raw
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| {
            ConfigError(format!(
                "environment variable {name} must be a list like [A,B] (got `{raw}`)"
            ))
        })?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            if item.is_empty() {
                Err(ConfigError(format!(
                    "environment variable {name} has an empty list item"
                )))
            } else {
                Ok(Value::from(item.to_string()))
            }
        })
        .collect()
}

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named(METADATA_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut map = Map::new();
        map.insert(Profile::Default, self.dict.clone());
        Ok(map)
    }
}
