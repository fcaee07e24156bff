//! The unixctl server that `ovs-appctl` talks to: JSON-RPC on a Unix
//! socket (`$OVS_RUNDIR/ovs-vswitchd.<pid>.ctl`, or `--unixctl`), one
//! request `{"method": COMMAND, "params": [ARG, ...], "id": N}` answered
//! `{"result": TEXT, "error": null, "id": N}` or with the error text, which
//! `ovs-appctl` prints to stderr before exiting 2. Commands are registered
//! with their argument counts and usage, as OVS's `unixctl_command_register`
//! does; `list-commands` is built in, and an unknown command or a wrong
//! number of arguments is answered with OVS's own wording.

use std::collections::BTreeMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::jsonrpc::{error_response, response, Conn};

/// A command's handler: the arguments in, the reply text or the error
/// text out.
pub type Handler = Box<dyn Fn(&[String]) -> Result<String, String> + Send>;

struct Command {
    usage: String,
    min: usize,
    max: usize,
    handler: Handler,
}

/// The registered commands.
#[derive(Default)]
pub struct Commands {
    map: BTreeMap<String, Command>,
}

impl Commands {
    /// Registers `name` taking `min..=max` arguments (`usage` as
    /// `list-commands` shows it).
    pub fn register(&mut self, name: &str, usage: &str, min: usize, max: usize, handler: Handler) {
        self.map.insert(name.to_string(), Command { usage: usage.to_string(), min, max, handler });
    }

    /// The answer to one request: the reply's `result` or `error` text.
    pub fn run(&self, method: &str, params: &[String]) -> Result<String, String> {
        if method == "list-commands" {
            let mut s = String::from("The available commands are:\n");
            let mut all: Vec<(&str, &str)> = self.map.iter().map(|(n, c)| (n.as_str(), c.usage.as_str())).collect();
            all.push(("list-commands", ""));
            all.sort();
            for (n, u) in all {
                s += format!("  {n:<23} {u}").trim_end();
                s.push('\n');
            }
            return Ok(s);
        }
        let Some(c) = self.map.get(method) else {
            return Err(format!(
                "\"{method}\" is not a valid command (use \"list-commands\" to see a list of valid commands)"
            ));
        };
        if params.len() < c.min {
            return Err(format!("\"{method}\" command requires at least {} arguments", c.min));
        }
        if params.len() > c.max {
            return Err(format!("\"{method}\" command takes at most {} arguments", c.max));
        }
        (c.handler)(params)
    }

    /// The response to one JSON-RPC message; `None` for a notification or
    /// a message that is not a request (nothing to answer).
    pub fn answer(&self, m: &Value) -> Option<Value> {
        let id = m.get("id")?;
        if id.is_null() {
            return None;
        }
        let Some(method) = m.get("method").and_then(Value::as_str) else {
            return Some(error_response(id, Value::String("request has no method".into())));
        };
        let params: Option<Vec<String>> = match m.get("params") {
            Some(Value::Array(a)) => a.iter().map(|p| p.as_str().map(str::to_string)).collect(),
            None => Some(vec![]),
            _ => None,
        };
        let Some(params) = params else {
            return Some(error_response(id, Value::String("\"params\" must be an array of strings".into())));
        };
        // As OVS's unixctl_command_reply__: a non-empty body ends with a
        // newline (ovs-appctl prints it as is).
        let body = |mut t: String| {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            Value::String(t)
        };
        Some(match self.run(method, &params) {
            Ok(text) => response(id, body(text)),
            Err(e) => error_response(id, body(e)),
        })
    }
}

/// The listening socket; the file is removed when dropped.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

/// How long a connected client may stay silent before it is dropped (a
/// client that connects and sends nothing must not hold the server).
const IDLE: Duration = Duration::from_secs(5);

impl Server {
    /// Listens on `path`, replacing a socket file nobody answers on (what
    /// a killed process leaves).
    ///
    /// # Errors
    /// Something answers there already, or the socket cannot be made.
    pub fn bind(path: &Path) -> Result<Server, String> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{}: another process answers on it", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Server { listener, path: path.to_path_buf() })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `stop`: each client's requests answered in turn, one
    /// client at a time (as `ovs-appctl` connects, asks once and leaves).
    /// A client that sends something that is not JSON is disconnected.
    pub fn serve(&self, commands: &Commands, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let mut c = Conn::new(s);
                    while !stop.load(Ordering::Relaxed) {
                        match c.recv(IDLE) {
                            Ok(Some(m)) => {
                                if let Some(r) = commands.answer(&m) {
                                    if c.send(&r).is_err() {
                                        break;
                                    }
                                }
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_requests_answered_as_ovs_does() {
        let mut c = Commands::default();
        c.register("version", "", 0, 0, Box::new(|_| Ok("ovs-vswitchd (sdnfwd)\n".into())));
        c.register("echo", "TEXT...", 1, 2, Box::new(|a| Ok(a.join(" "))));
        let ask = |m: Value| c.answer(&m).unwrap();
        assert_eq!(ask(json!({"method": "version", "params": [], "id": 0}))["result"], "ovs-vswitchd (sdnfwd)\n");
        assert_eq!(ask(json!({"method": "echo", "params": ["a", "b"], "id": 7}))["result"], "a b\n");
        let e = ask(json!({"method": "nope", "params": [], "id": 1}));
        assert_eq!(
            e["error"],
            "\"nope\" is not a valid command (use \"list-commands\" to see a list of valid commands)\n"
        );
        assert!(e["result"].is_null());
        assert_eq!(
            ask(json!({"method": "echo", "params": [], "id": 2}))["error"],
            "\"echo\" command requires at least 1 arguments\n"
        );
        assert_eq!(
            ask(json!({"method": "echo", "params": ["1", "2", "3"], "id": 2}))["error"],
            "\"echo\" command takes at most 2 arguments\n"
        );
        assert!(ask(json!({"method": "echo", "params": [1], "id": 3}))["error"].as_str().unwrap().contains("strings"));
        let l = ask(json!({"method": "list-commands", "params": [], "id": 4}));
        assert_eq!(
            l["result"],
            "The available commands are:\n  echo                    TEXT...\n  list-commands\n  version\n"
        );
        assert_eq!(c.answer(&json!({"method": "version", "params": [], "id": null})), None);
    }
}
