//! Injected latency, hangs and failures, so tests can make the device behave like a slow,
//! stuck or failing module.
//!
//! Settings come from two places, the file overriding the environment key by key:
//! - environment variables, read once at `SDF_OpenDevice`: `SOFTSDF_LATENCY_US`,
//!   `SOFTSDF_HANG`, `SOFTSDF_FAIL`, `SOFTSDF_FAIL_CODE`;
//! - the control file named by `SOFTSDF_CONTROL`, re-read on every call, so a test changes the
//!   device's behaviour while a process is using it. A missing file means "no faults from the
//!   file"; replace it atomically (write a temporary file, then rename). Lines are
//!   `key = value`, `#` starts a comment:
//!
//! ```text
//! latency_us = 300        # sleep this long at the start of every call
//! hang = sign             # these calls block until the file no longer names them
//! fail = sign,export_public_key   # these calls return fail_code
//! fail_code = 0x01000003  # default SDR_COMMFAIL
//! ```
//!
//! Operation names are those of [`Op::name`], or `all`; `none` or an empty value clears a list.
//! A control file this module cannot parse fails every call with `SDR_UNKNOWERR` and says why
//! on stderr: a typo must not look like a healthy device.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codes::{SdfError, SDR_COMMFAIL};

/// One kind of device call, as named in the switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `SDF_OpenDevice`.
    OpenDevice,
    /// `SDF_CloseDevice`.
    CloseDevice,
    /// `SDF_OpenSession`.
    OpenSession,
    /// `SDF_CloseSession`.
    CloseSession,
    /// `SDF_GetDeviceInfo`.
    DeviceInfo,
    /// `SDF_GenerateRandom`.
    Random,
    /// `SDF_GetPrivateKeyAccessRight`.
    AccessRight,
    /// `SDF_ReleasePrivateKeyAccessRight`.
    ReleaseAccessRight,
    /// `SDF_ExportSignPublicKey_ECC`.
    ExportPublicKey,
    /// `SDF_InternalSign_ECC`.
    Sign,
    /// `SDF_ExternalVerify_ECC`, `SDF_InternalVerify_ECC`.
    Verify,
    /// `SDF_HashInit`, `SDF_HashUpdate`, `SDF_HashFinal`.
    Hash,
}

impl Op {
    /// Every operation, in declaration order.
    pub const ALL: [Op; 12] = [
        Op::OpenDevice,
        Op::CloseDevice,
        Op::OpenSession,
        Op::CloseSession,
        Op::DeviceInfo,
        Op::Random,
        Op::AccessRight,
        Op::ReleaseAccessRight,
        Op::ExportPublicKey,
        Op::Sign,
        Op::Verify,
        Op::Hash,
    ];

    /// The name used in the switches.
    pub fn name(self) -> &'static str {
        match self {
            Op::OpenDevice => "open_device",
            Op::CloseDevice => "close_device",
            Op::OpenSession => "open_session",
            Op::CloseSession => "close_session",
            Op::DeviceInfo => "device_info",
            Op::Random => "random",
            Op::AccessRight => "access_right",
            Op::ReleaseAccessRight => "release_access_right",
            Op::ExportPublicKey => "export_public_key",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::Hash => "hash",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSet(u16);

impl OpSet {
    /// Whether `op` is in the set.
    pub fn contains(self, op: Op) -> bool {
        self.0 & op.bit() != 0
    }

    /// Parses `sign,export_public_key`, `all`, `none` or an empty value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = 0u16;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => set = u16::MAX,
                "none" => set = 0,
                _ => {
                    let op = Op::ALL
                        .into_iter()
                        .find(|op| op.name() == name)
                        .ok_or_else(|| format!("unknown operation `{name}`"))?;
                    set |= op.bit();
                }
            }
        }
        Ok(OpSet(set))
    }
}

/// The fault settings in force for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Slept at the start of every call.
    pub latency: Duration,
    /// Calls that block until the control file no longer names them.
    pub hang: OpSet,
    /// Calls that fail with `fail_code`.
    pub fail: OpSet,
    /// The code a failing call returns.
    pub fail_code: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            hang: OpSet::default(),
            fail: OpSet::default(),
            fail_code: SDR_COMMFAIL,
        }
    }
}

impl Faults {
    /// Applies one `key = value` setting.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "latency_us" => {
                let us: u64 = value
                    .parse()
                    .map_err(|_| format!("latency_us: `{value}` is not a number"))?;
                self.latency = Duration::from_micros(us);
            }
            "hang" => self.hang = OpSet::parse(value)?,
            "fail" => self.fail = OpSet::parse(value)?,
            "fail_code" => self.fail_code = parse_code(value)?,
            _ => return Err(format!("unknown key `{key}`")),
        }
        Ok(())
    }

    /// The settings from the `SOFTSDF_*` environment variables.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from `SOFTSDF_*` variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut faults = Faults::default();
        for (name, key) in [
            ("SOFTSDF_LATENCY_US", "latency_us"),
            ("SOFTSDF_HANG", "hang"),
            ("SOFTSDF_FAIL", "fail"),
            ("SOFTSDF_FAIL_CODE", "fail_code"),
        ] {
            if let Some(value) = var(name) {
                faults
                    .set(key, value.trim())
                    .map_err(|e| format!("{name}: {e}"))?;
            }
        }
        Ok(faults)
    }

    /// These settings overridden by the lines of a control file's text.
    pub fn overlay(mut self, text: &str) -> Result<Self, String> {
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected `key = value`", number + 1))?;
            self.set(key.trim(), value.trim())
                .map_err(|e| format!("line {}: {e}", number + 1))?;
        }
        Ok(self)
    }
}

fn parse_code(value: &str) -> Result<u32, String> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => value.parse(),
    };
    match parsed {
        Ok(0) | Err(_) => Err(format!("fail_code: `{value}` is not a non-zero code")),
        Ok(code) => Ok(code),
    }
}

/// Where a device takes its fault settings from.
#[derive(Debug, Clone, Default)]
pub struct Switches {
    /// Settings fixed at open (from the environment).
    pub base: Faults,
    /// The control file re-read on every call.
    pub control_file: Option<PathBuf>,
}

/// How often a hung call looks at the control file again.
const HANG_POLL: Duration = Duration::from_millis(5);

impl Switches {
    /// The settings in force now.
    pub fn current(&self) -> Result<Faults, SdfError> {
        let Some(path) = &self.control_file else {
            return Ok(self.base);
        };
        read_control(path, self.base).map_err(|why| {
            eprintln!("softsdf: control file {}: {why}", path.display());
            SdfError::Unknown
        })
    }

    /// Applies the switches to a call of `op`: blocks while it is hung, sleeps the latency,
    /// then fails it if it is to fail.
    pub fn gate(&self, op: Op) -> Result<(), SdfError> {
        let mut faults = self.current()?;
        while faults.hang.contains(op) {
            std::thread::sleep(HANG_POLL);
            faults = self.current()?;
        }
        if !faults.latency.is_zero() {
            std::thread::sleep(faults.latency);
        }
        if faults.fail.contains(op) {
            return Err(SdfError::Injected(faults.fail_code));
        }
        Ok(())
    }
}

fn read_control(path: &Path, base: Faults) -> Result<Faults, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => base.overlay(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(base),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_text_overrides_key_by_key() {
        let base = Faults {
            latency: Duration::from_micros(7),
            ..Faults::default()
        };
        let f = base
            .overlay("# comment\nfail = sign, export_public_key\nfail_code = 0x01000004 # hard\n")
            .unwrap();
        assert_eq!(f.latency, Duration::from_micros(7));
        assert!(f.fail.contains(Op::Sign) && f.fail.contains(Op::ExportPublicKey));
        assert!(!f.fail.contains(Op::OpenSession));
        assert_eq!(f.fail_code, 0x0100_0004);
        let all = Faults::default().overlay("hang = all").unwrap();
        assert!(Op::ALL.into_iter().all(|op| all.hang.contains(op)));
        assert_eq!(
            Faults::default().overlay("hang = none\n").unwrap().hang,
            OpSet::default()
        );
    }

    #[test]
    fn environment_variables_set_the_base() {
        let vars = |name: &str| match name {
            "SOFTSDF_LATENCY_US" => Some("300".to_owned()),
            "SOFTSDF_FAIL" => Some("sign".to_owned()),
            "SOFTSDF_FAIL_CODE" => Some("16777220".to_owned()),
            _ => None,
        };
        let f = Faults::from_vars(vars).unwrap();
        assert_eq!(f.latency, Duration::from_micros(300));
        assert!(f.fail.contains(Op::Sign) && !f.hang.contains(Op::Sign));
        assert_eq!(f.fail_code, 0x0100_0004);
        let bad = Faults::from_vars(|n| (n == "SOFTSDF_HANG").then(|| "sgin".to_owned()));
        assert!(bad.unwrap_err().starts_with("SOFTSDF_HANG: "));
    }

    #[test]
    fn a_malformed_control_text_is_an_error_naming_the_line() {
        assert!(Faults::default()
            .overlay("fail = sgin")
            .unwrap_err()
            .contains("line 1: unknown operation `sgin`"));
        assert!(Faults::default()
            .overlay("\nlatency = 3")
            .unwrap_err()
            .contains("line 2: unknown key"));
        assert!(Faults::default().overlay("fail_code = 0").is_err());
        assert!(Faults::default().overlay("latency_us").is_err());
    }

    proptest::proptest! {
        /// Any text is either settings or an error: never a panic inside the caller's process.
        #[test]
        fn any_control_text_parses_or_is_refused(text in "(?s).{0,200}") {
            let _ = Faults::default().overlay(&text);
        }
    }

    #[test]
    fn the_control_file_is_read_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let switches = Switches {
            base: Faults::default(),
            control_file: Some(path.clone()),
        };
        assert_eq!(switches.gate(Op::Sign), Ok(()), "a missing file: no faults");
        std::fs::write(&path, "fail = sign\n").unwrap();
        assert_eq!(
            switches.gate(Op::Sign),
            Err(SdfError::Injected(SDR_COMMFAIL))
        );
        assert_eq!(switches.gate(Op::OpenSession), Ok(()));
        std::fs::write(&path, "fail = sgin\n").unwrap();
        assert_eq!(switches.gate(Op::OpenSession), Err(SdfError::Unknown));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(switches.gate(Op::Sign), Ok(()));
    }

    #[test]
    fn a_hung_call_resumes_when_the_file_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        std::fs::write(&path, "hang = sign\n").unwrap();
        let switches = Switches {
            base: Faults::default(),
            control_file: Some(path.clone()),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || tx.send(switches.gate(Op::Sign)).unwrap());
        // Still blocked after many polls (a bounded wait for an answer that must not come).
        assert!(rx.recv_timeout(HANG_POLL * 20).is_err());
        let tmp = dir.path().join("control.new");
        std::fs::write(&tmp, "").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(rx.recv().unwrap(), Ok(()));
        worker.join().unwrap();
    }
}
