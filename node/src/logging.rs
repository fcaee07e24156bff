//! The log of `sdnfwd run`: one line per event on stderr, with a UTC
//! timestamp and a level, `2026-05-09T07:29:33.412Z INFO  sdnfwd: port 4
//! (vethw1, pod project-a/web-1) up ...`. The level is `--log-level`, else
//! `RUST_LOG` (a bare level, or the `sdnfwd=LEVEL` directive of a list),
//! else `info`. Thread-safe (one atomic; each line is one write); never
//! called per packet.

use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Failures only.
    Error = 1,
    /// And what the operator should look at (a port that stays down).
    Warn = 2,
    /// And every change (ports, reloads, ctl changes): the default.
    Info = 3,
    /// And each control request.
    Debug = 4,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the level: `arg` (`--log-level`) if given, else `RUST_LOG`.
///
/// # Errors
/// A `RUST_LOG` that names no level sdnfwd knows.
pub fn init(arg: Option<Level>) -> Result<(), String> {
    let level = match arg {
        Some(l) => l,
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => from_rust_log(&v)
                .ok_or(format!("RUST_LOG=`{v}`: expected error, warn, info or debug (or sdnfwd=LEVEL)"))?,
            _ => Level::Info,
        },
    };
    set(level);
    Ok(())
}

/// Sets the level from now on (`ovs-appctl vlog/set`).
pub fn set(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The level in force.
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Error,
        2 => Level::Warn,
        3 => Level::Info,
        _ => Level::Debug,
    }
}

/// The level a `RUST_LOG` value gives sdnfwd: its `sdnfwd=LEVEL`
/// directive, else its last bare level.
fn from_rust_log(v: &str) -> Option<Level> {
    let mut bare = None;
    for d in v.split(',') {
        match d.split_once('=') {
            Some((target, l)) if target.trim() == "sdnfwd" => return Level::parse(l),
            Some(_) => {}
            None => bare = Level::parse(d).or(bare),
        }
    }
    bare
}

/// Whether lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// The log file, when lines go to one instead of stderr.
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Sends the lines to `path` (appended) from now on.
///
/// # Errors
/// The file cannot be opened.
pub fn set_file(path: &std::path::Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    *FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    Ok(())
}

/// Writes one line at `level`.
pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let line = format!("{} {} sdnfwd: {msg}\n", timestamp(SystemTime::now()), level.name());
    match FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// An INFO line (one that starts `warning: ` a WARN line, without it).
pub fn note(msg: &str) {
    match msg.strip_prefix("warning: ") {
        Some(m) => log(Level::Warn, m),
        None => log(Level::Info, msg),
    }
}

/// RFC 3339 UTC with milliseconds.
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_timestamp() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.5Z: a leap day.
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_millis(1_709_251_199_500)), "2024-02-29T23:59:59.500Z");
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(4_102_444_800)), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn test_rust_log() {
        assert_eq!(from_rust_log("debug"), Some(Level::Debug));
        assert_eq!(from_rust_log("warn,sdnfwd=error"), Some(Level::Error));
        assert_eq!(from_rust_log("other=debug,info"), Some(Level::Info));
        assert_eq!(from_rust_log("other=debug"), None);
        assert_eq!(from_rust_log("loud"), None);
    }
}
