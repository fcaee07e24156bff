//! `sdnfwd ctl`: the client of a running node's control socket
//! (node/src/ctl.rs serves it).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use clap::Args;
pub use node::ctl::HELP;

/// `sdnfwd ctl`.
#[derive(Args)]
pub struct CtlArgs {
    /// Control socket (default: the one socket under /run/sdnfwd).
    #[arg(long)]
    pub socket: Option<String>,
    /// The command and its arguments (add-flows, replace-flows and
    /// add-groups take a FILE, `-` for stdin).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Writes to stdout; a reader that went away (`| head`) ends the command
/// quietly with status 0, as it would end `cat`.
fn print_out(text: &str) -> Result<ExitCode, String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(format!("sdnfwd ctl: stdout: {e}")),
    }
}

pub fn ctl(a: CtlArgs) -> Result<ExitCode, String> {
    if matches!(a.command.first().map(String::as_str), Some("help" | "--help" | "-h")) {
        return print_out(HELP);
    }
    let socket = match a.socket {
        Some(s) => s,
        None => {
            let v: Vec<String> = std::fs::read_dir("/run/sdnfwd")
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.path().to_string_lossy().into_owned())
                        .filter(|p| p.ends_with(".ctl"))
                        .collect()
                })
                .unwrap_or_default();
            match &v[..] {
                [one] => one.clone(),
                [] => return Err("sdnfwd ctl: no control socket under /run/sdnfwd (is sdnfwd run running?)".into()),
                _ => return Err(format!("sdnfwd ctl: several sockets, pick one with --socket: {}", v.join(", "))),
            }
        }
    };
    let (cmd, args) = a.command.split_first().ok_or("sdnfwd ctl: no command")?;
    let mut request = cmd.clone();
    let mut body = String::new();
    let policy_add = cmd == "policy" && args.first().map(String::as_str) == Some("add");
    if matches!(cmd.as_str(), "add-flows" | "replace-flows" | "add-groups") || policy_add {
        let (cmd, args) = if policy_add { ("policy add", &args[1..]) } else { (cmd.as_str(), args) };
        let file = args.first().ok_or(format!("sdnfwd ctl: {cmd} FILE (`-` for stdin)"))?;
        // The server names the file in its errors.
        request = format!("{cmd} {}", if file == "-" { "<stdin>" } else { file });
        body = if file == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| e.to_string())?;
            s
        } else {
            std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?
        };
    } else if !args.is_empty() {
        request += " ";
        request += &args.join(" ");
    }
    let mut s = UnixStream::connect(&socket).map_err(|e| format!("{socket}: {e}"))?;
    s.write_all(format!("{request}\n{body}").as_bytes()).map_err(|e| e.to_string())?;
    s.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(s).lines();
    let status = lines.next().transpose().map_err(|e| e.to_string())?.unwrap_or_default();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    if status == "OK" {
        print_out(&rest.iter().map(|l| format!("{l}\n")).collect::<String>())
    } else {
        // One line per error (a refused change may have several).
        // A line that names the command already reads as one.
        let line = |l: &str| if l.starts_with("ctl ") { format!("sdnfwd {l}") } else { format!("sdnfwd ctl: {l}") };
        let mut msg = line(status.trim_start_matches("ERROR: "));
        for l in rest {
            msg += "\n";
            msg += &line(&l);
        }
        Err(msg)
    }
}
