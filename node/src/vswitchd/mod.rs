//! `sdnfwd vswitchd [DATABASE]`: sdnfwd in place of ovs-vswitchd. It
//! takes ovs-vswitchd's command line, connects to the real ovsdb-server
//! (RFC 7047: the Open_vSwitch database, monitored; what it did written
//! back), serves the bridge the database describes with sdnfwd's
//! datapath, its flows over OpenFlow on `$OVS_RUNDIR/<bridge>.mgmt`
//! (`ovs-ofctl ... br0`), and `ovs-appctl` on
//! `$OVS_RUNDIR/ovs-vswitchd.<pid>.ctl`. The OpenShift SDN daemon drives it
//! with the stock `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl`, as it drives
//! Open vSwitch.
//!
//! The main thread owns the database connection and the ports: each
//! change of the database is planned ([`crate::bridge::plan`]: OpenFlow
//! numbers as ovs-vswitchd gives them) and reconciled ([`switch`]), then
//! `Interface.ofport`/`error` and `Open_vSwitch.cur_cfg` are written back,
//! on which a waiting `ovs-vsctl` returns. A lost database connection is
//! retried every second; the datapath keeps forwarding meanwhile, and the
//! state read after reconnecting is reconciled as any change.

mod switch;
pub mod underlay;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::logging::{self, note as log, Level};
use crate::ovs_paths::{Options, Paths};
use crate::ovsdb::{self, Client, Db, DB, MONITORED};
use crate::run::Mode;
use crate::sys::is_root;
pub use switch::BridgeName;
use switch::Switchd;

/// `sdnfwd vswitchd`: ovs-vswitchd's command line, and sdnfwd's own
/// datapath options.
#[derive(Args, Clone, Debug)]
pub struct VswitchdArgs {
    /// The database: `unix:PATH` (default `unix:$OVS_RUNDIR/db.sock`).
    pub database: Option<String>,
    /// Print the version (`ovs-vswitchd (sdnfwd) VERSION`) and exit, as
    /// `ovs-vswitchd --version` (ovs-ctl asks it).
    #[arg(short = 'V', long)]
    pub version: bool,
    /// Write the process id to FILE (default
    /// `$OVS_RUNDIR/ovs-vswitchd.pid`), which `ovs-appctl` reads.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub pidfile: Option<String>,
    /// Run in the background once the database has answered (the command
    /// returns then, as ovs-vswitchd's does).
    #[arg(long)]
    pub detach: bool,
    /// Log to FILE (default `$OVS_LOGDIR/ovs-vswitchd.log`) instead of
    /// stderr.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub log_file: Option<String>,
    /// The unixctl socket `ovs-appctl` talks to (default
    /// `$OVS_RUNDIR/ovs-vswitchd.<pid>.ctl`).
    #[arg(long, value_name = "SOCKET")]
    pub unixctl: Option<String>,
    /// Accepted for ovs-ctl's command line; no effect.
    #[arg(long)]
    pub no_chdir: bool,
    /// Accepted for ovs-ctl's command line; no effect (a supervisor, or
    /// systemd, restarts sdnfwd).
    #[arg(long)]
    pub monitor: bool,
    /// Accepted for ovs-ctl's command line; no effect (the poll loops'
    /// memory is allocated at start).
    #[arg(long)]
    pub mlockall: bool,
    /// Accepted for ovs-ctl's command line; no effect.
    #[arg(long)]
    pub no_self_confinement: bool,
    /// Accepted for ovs-ctl's command line (`OVS_USER`): logged, and sdnfwd
    /// keeps root (it opens AF_XDP sockets and attaches XDP programs as
    /// ports come).
    #[arg(long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// ovs-vswitchd's log levels: `[DESTINATION:][MODULE:]LEVEL` with
    /// levels off, emer, err, warn, info, dbg (repeatable; `-vconsole:info`,
    /// `-vfile:dbg`; syslog's are ignored).
    #[arg(short = 'v', long = "verbose", value_name = "SPEC", num_args = 0..=1, default_missing_value = "dbg")]
    pub verbose: Vec<String>,
    /// How XDP programs are attached.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub xdp_mode: Mode,
    /// Ask for zero-copy AF_XDP.
    #[arg(long)]
    pub zero_copy: bool,
    /// Let an idle poll loop sleep up to this many microseconds.
    #[arg(long, default_value_t = 0)]
    pub pmd_maxsleep_us: u64,
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// The paths `a` names for process `pid`.
fn paths(a: &VswitchdArgs, pid: u32) -> Paths {
    let given = |o: &Option<String>| o.as_ref().map(|f| (!f.is_empty()).then(|| f.clone()));
    let o = Options {
        database: a.database.clone(),
        pidfile: given(&a.pidfile),
        log_file: given(&a.log_file),
        unixctl: a.unixctl.clone(),
    };
    Paths::resolve(&o, pid, env)
}

/// `--detach`: the same command in the background (its own session, no
/// terminal), this process returning once it answers on its unixctl
/// socket, which it opens after the database has answered, as
/// ovs-vswitchd completes its detach.
fn detach(a: &VswitchdArgs) -> Result<ExitCode, String> {
    let exe = std::env::current_exe().map_err(|e| format!("sdnfwd vswitchd: {e}"))?;
    let args: Vec<OsString> = std::env::args_os().skip(1).filter(|x| x != "--detach").collect();
    let p = paths(a, 0);
    let stderr = match &p.log_file {
        Some(f) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .map_err(|e| format!("sdnfwd vswitchd: {}: {e}", f.display()))?,
        ),
        None => Stdio::null(),
    };
    let mut child = std::process::Command::new("setsid")
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("sdnfwd vswitchd: --detach: setsid: {e}"))?;
    let sock = paths(a, child.id()).unixctl;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("sdnfwd vswitchd: the detached process exited ({st}) before it was ready"));
        }
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "sdnfwd vswitchd: the detached process (pid {}) did not answer on {} in 60 s",
        child.id(),
        sock.display()
    ))
}

/// The pidfile, locked for the life of the process with a POSIX (fcntl)
/// lock, as OVS's daemon code locks it: `ovs-appctl` and `ovs-ctl` take an
/// unlocked pidfile as stale. Removed when dropped.
struct PidFile {
    path: PathBuf,
    _lock: std::fs::File,
}

impl PidFile {
    fn write(path: &Path) -> Result<PidFile, String> {
        use rustix::fs::{fcntl_lock, FlockOperation};
        use std::io::Write;
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| err(&e))?;
        fcntl_lock(&f, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            let pid = std::fs::read_to_string(path).unwrap_or_default();
            format!("{}: already locked by pid {} ({e}): is another ovs-vswitchd running?", path.display(), pid.trim())
        })?;
        f.set_len(0).map_err(|e| err(&e))?;
        writeln!(f, "{}", std::process::id()).map_err(|e| err(&e))?;
        Ok(PidFile { path: path.to_path_buf(), _lock: f })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A monitored connection to the database: the client and its replica.
struct Session {
    client: Client,
    db: Db,
}

/// Connects, checks the schema and starts the monitor.
fn connect(target: &str) -> Result<Session, String> {
    let mut client = Client::connect(target)?;
    let version = client.check_schema(DB)?;
    let mut db = Db::default();
    db.apply(&client.monitor(DB, "sdnfwd", MONITORED)?)?;
    log(&format!("{target}: connected (schema {version})"));
    Ok(Session { client, db })
}

/// Connects, retrying every second until `stop` (the first failure, and a
/// changed one, logged).
fn connect_retrying(target: &str, stop: &dyn Fn() -> bool) -> Option<Session> {
    let mut last = String::new();
    while !stop() {
        match connect(target) {
            Ok(s) => return Some(s),
            Err(e) => {
                if e != last {
                    logging::log(Level::Warn, &format!("{target}: {e}; retrying every second"));
                    last = e;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    None
}

/// `sdnfwd vswitchd`.
///
/// # Errors
/// Not root, a file that cannot be written, a datapath that cannot start.
pub fn vswitchd(a: VswitchdArgs) -> Result<ExitCode, String> {
    if a.version {
        println!("{}", crate::appctl::version().trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    if a.detach {
        return detach(&a);
    }
    logging::init(None)?;
    // In order, the last winning; syslog's levels are not sdnfwd's.
    for v in a.verbose.iter().filter(|v| !v.to_ascii_lowercase().contains("syslog")) {
        logging::set(crate::appctl::vlog_spec(v).map_err(|e| format!("sdnfwd vswitchd: -v{v}: {e}"))?);
    }
    if !is_root() {
        return Err("sdnfwd vswitchd: needs root (AF_XDP sockets, XDP programs, internal interfaces)".into());
    }
    // ovs-ctl takes the pidfile's process as ovs-vswitchd only when its
    // name says so (/proc/PID/comm).
    let _ = std::fs::write("/proc/self/comm", "ovs-vswitchd");
    let p = paths(&a, std::process::id());
    if let Some(f) = &p.log_file {
        logging::set_file(f).map_err(|e| format!("sdnfwd vswitchd: --log-file: {e}"))?;
    }
    let _pidfile = match &p.pidfile {
        Some(f) => Some(PidFile::write(f).map_err(|e| format!("sdnfwd vswitchd: --pidfile: {e}"))?),
        None => None,
    };
    let term = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, term.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    log(&format!(
        "sdnfwd vswitchd {} (pid {}): database {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        p.database
    ));
    let Some(mut session) = connect_retrying(&p.database, &|| term.load(Ordering::Relaxed)) else {
        return Ok(ExitCode::SUCCESS);
    };
    let first = ovsdb::switch(&session.db).unwrap_or_default();
    let xsk = crate::datapath::XskOptions { mode: a.xdp_mode.xdp(), zero_copy: a.zero_copy };
    let mut sw = Switchd::start(&first, &p, xsk, Duration::from_micros(a.pmd_maxsleep_us))?;
    let exit = Arc::new(AtomicBool::new(false));
    let server = crate::unixctl::Server::bind(&p.unixctl).map_err(|e| format!("sdnfwd vswitchd: --unixctl {e}"))?;
    let commands = sw.commands(exit.clone());
    let stop_server = Arc::new(AtomicBool::new(false));
    let unixctl = {
        let stop = stop_server.clone();
        std::thread::Builder::new()
            .name("sdnfwd-unixctl".into())
            .spawn(move || server.serve(&commands, &stop))
            .map_err(|e| e.to_string())?
    };
    log(&format!("ovs-appctl: {}", p.unixctl.display()));
    let mut dirty = true;
    let mut last_tick = Instant::now() - Duration::from_secs(10);
    let stopping = || term.load(Ordering::Relaxed) || exit.load(Ordering::Relaxed);
    while !stopping() {
        match session.client.next_update(Duration::from_millis(50)) {
            Ok(Some(u)) => match session.db.apply(&u) {
                Ok(()) => dirty = true,
                Err(e) => logging::log(Level::Error, &format!("database update ignored: {e}")),
            },
            Ok(None) => {}
            Err(e) => {
                logging::log(
                    Level::Warn,
                    &format!("{}: connection lost ({e}); the datapath keeps forwarding", p.database),
                );
                match connect_retrying(&p.database, &stopping) {
                    Some(s) => {
                        session = s;
                        sw.resync();
                        dirty = true;
                    }
                    None => break,
                }
            }
        }
        let tick = last_tick.elapsed() >= Duration::from_millis(500);
        if tick {
            last_tick = Instant::now();
            dirty |= sw.tick();
        }
        if dirty {
            dirty = false;
            match ovsdb::switch(&session.db) {
                Ok(s) => {
                    let ops = sw.reconcile(&s);
                    if !ops.is_empty() {
                        if let Err(e) = session.client.transact(DB, ops) {
                            logging::log(Level::Warn, &format!("writing back to the database: {e}"));
                        }
                    }
                }
                Err(e) => logging::log(Level::Error, &format!("database: {e}; nothing changed")),
            }
        }
    }
    log("stopping");
    stop_server.store(true, Ordering::Relaxed);
    let _ = unixctl.join();
    sw.stop()?;
    log("stopped: internal interfaces removed, XDP programs detached");
    Ok(ExitCode::SUCCESS)
}
