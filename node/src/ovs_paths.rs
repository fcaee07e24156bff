//! Where ovs-vswitchd keeps its files, so that the drop-in is found where
//! the stock tools look: `OVS_RUNDIR` (default `/var/run/openvswitch`)
//! holds the database socket (`db.sock`), the pidfile
//! (`ovs-vswitchd.pid`), the unixctl socket (`ovs-vswitchd.<pid>.ctl`,
//! which `ovs-appctl` finds through the pidfile) and each bridge's
//! OpenFlow management socket (`<bridge>.mgmt`, which `ovs-ofctl ... br0`
//! connects to); `OVS_LOGDIR` (default `/var/log/openvswitch`) the log.
//! ovs-vswitchd's own options override them: `--pidfile[=FILE]`,
//! `--log-file[=FILE]`, `--unixctl=SOCKET`, and the database argument.

use std::path::{Path, PathBuf};

/// The default run directory (Debian's `openvswitch-switch` build).
pub const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";
/// The default log directory.
pub const DEFAULT_LOGDIR: &str = "/var/log/openvswitch";

/// ovs-vswitchd's options that name files, as given (`None`: absent;
/// `Some(None)`: the option without a value, which means the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The DATABASE argument (`unix:PATH`).
    pub database: Option<String>,
    /// `--pidfile[=FILE]`.
    pub pidfile: Option<Option<String>>,
    /// `--log-file[=FILE]`.
    pub log_file: Option<Option<String>>,
    /// `--unixctl=SOCKET`.
    pub unixctl: Option<String>,
}

/// The resolved files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The run directory.
    pub rundir: PathBuf,
    /// The database to connect to.
    pub database: String,
    /// The pidfile to write, if any.
    pub pidfile: Option<PathBuf>,
    /// The log file, if any (else stderr).
    pub log_file: Option<PathBuf>,
    /// The unixctl socket.
    pub unixctl: PathBuf,
}

impl Paths {
    /// Resolves `o` for process `pid` with the environment variable
    /// lookup `env`; relative file names are under the run (or log)
    /// directory, as OVS's `abs_file_name` makes them.
    pub fn resolve(o: &Options, pid: u32, env: impl Fn(&str) -> Option<String>) -> Paths {
        let rundir = PathBuf::from(env("OVS_RUNDIR").unwrap_or_else(|| DEFAULT_RUNDIR.into()));
        let logdir = PathBuf::from(env("OVS_LOGDIR").unwrap_or_else(|| DEFAULT_LOGDIR.into()));
        let under = |dir: &Path, f: &str| if f.starts_with('/') { PathBuf::from(f) } else { dir.join(f) };
        Paths {
            database: o.database.clone().unwrap_or_else(|| format!("unix:{}", rundir.join("db.sock").display())),
            pidfile: o.pidfile.as_ref().map(|f| under(&rundir, f.as_deref().unwrap_or("ovs-vswitchd.pid"))),
            log_file: o.log_file.as_ref().map(|f| under(&logdir, f.as_deref().unwrap_or("ovs-vswitchd.log"))),
            unixctl: o
                .unixctl
                .as_deref()
                .map(|f| under(&rundir, f))
                .unwrap_or_else(|| rundir.join(format!("ovs-vswitchd.{pid}.ctl"))),
            rundir,
        }
    }

    /// Bridge `bridge`'s OpenFlow management socket.
    pub fn mgmt(&self, bridge: &str) -> PathBuf {
        self.rundir.join(format!("{bridge}.mgmt"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_defaults_environment_and_options() {
        let none = |_: &str| None;
        let p = Paths::resolve(&Options::default(), 42, none);
        assert_eq!(p.database, "unix:/var/run/openvswitch/db.sock");
        assert_eq!(p.unixctl, PathBuf::from("/var/run/openvswitch/ovs-vswitchd.42.ctl"));
        assert_eq!((p.pidfile, p.log_file), (None, None));
        assert_eq!(
            Paths::resolve(&Options::default(), 42, none).mgmt("br0"),
            PathBuf::from("/var/run/openvswitch/br0.mgmt")
        );
        let env = |k: &str| match k {
            "OVS_RUNDIR" => Some("/tmp/ovs".to_string()),
            "OVS_LOGDIR" => Some("/tmp/log".to_string()),
            _ => None,
        };
        let o = Options { pidfile: Some(None), log_file: Some(None), ..Default::default() };
        let p = Paths::resolve(&o, 7, env);
        assert_eq!(p.database, "unix:/tmp/ovs/db.sock");
        assert_eq!(p.pidfile, Some(PathBuf::from("/tmp/ovs/ovs-vswitchd.pid")));
        assert_eq!(p.log_file, Some(PathBuf::from("/tmp/log/ovs-vswitchd.log")));
        let o = Options {
            database: Some("unix:/x/db.sock".into()),
            pidfile: Some(Some("/p/v.pid".into())),
            log_file: Some(Some("v.log".into())),
            unixctl: Some("ctl.sock".into()),
        };
        let p = Paths::resolve(&o, 7, env);
        assert_eq!(
            (p.database.as_str(), p.pidfile.unwrap(), p.log_file.unwrap(), p.unixctl),
            (
                "unix:/x/db.sock",
                PathBuf::from("/p/v.pid"),
                PathBuf::from("/tmp/log/v.log"),
                PathBuf::from("/tmp/ovs/ctl.sock")
            )
        );
    }
}
