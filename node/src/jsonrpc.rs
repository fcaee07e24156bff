//! JSON-RPC 1.0 over a stream socket, as Open vSwitch speaks it to
//! ovsdb-server (RFC 7047 §4) and to `ovs-appctl` (its unixctl protocol):
//! JSON values one after another with no delimiter, a request `{"method",
//! "params", "id"}`, its response `{"result", "error", "id"}`, and
//! notifications (`"id": null`).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Cuts a byte stream into JSON values: what has arrived is kept until a
/// whole value is there.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
}

/// The most a peer may send without finishing a value: a bigger one is a
/// broken or hostile peer, not a database (ovsdb-server's own limit on a
/// message it reads is the same order).
pub const MAX_MESSAGE: usize = 64 << 20;

impl Framer {
    /// Appends bytes as read.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole value, `Ok(None)` if none is complete yet.
    ///
    /// # Errors
    /// What arrived is not JSON (the connection is then useless: there is
    /// no way to find the next value), or it exceeds [`MAX_MESSAGE`].
    pub fn next_value(&mut self) -> Result<Option<Value>, String> {
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match it.next() {
            None => {
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(v)) => {
                let at = it.byte_offset();
                self.buf.drain(..at);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => {
                if self.buf.len() > MAX_MESSAGE {
                    return Err(format!("a JSON-RPC message over {MAX_MESSAGE} bytes"));
                }
                Ok(None)
            }
            Some(Err(e)) => Err(format!("not JSON: {e}")),
        }
    }
}

/// One JSON-RPC connection.
pub struct Conn {
    stream: UnixStream,
    framer: Framer,
}

impl Conn {
    /// Wraps a connected stream.
    pub fn new(stream: UnixStream) -> Conn {
        Conn { stream, framer: Framer::default() }
    }

    /// Sends one message.
    ///
    /// # Errors
    /// The peer is gone.
    pub fn send(&mut self, v: &Value) -> Result<(), String> {
        let bytes = serde_json::to_vec(v).map_err(|e| e.to_string())?;
        self.stream.write_all(&bytes).map_err(|e| format!("sending: {e}"))
    }

    /// The next message, waiting at most `timeout` (`Ok(None)` when it
    /// passes).
    ///
    /// # Errors
    /// The peer closed the connection, or sent something that is not JSON.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Value>, String> {
        let end = Instant::now() + timeout;
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(v) = self.framer.next_value()? {
                return Ok(Some(v));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the peer closed the connection".into()),
                Ok(n) => self.framer.push(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading: {e}")),
            }
        }
    }
}

/// A request.
pub fn request(method: &str, params: Value, id: Value) -> Value {
    serde_json::json!({"method": method, "params": params, "id": id})
}

/// A successful response to request `id`.
pub fn response(id: &Value, result: Value) -> Value {
    serde_json::json!({"result": result, "error": null, "id": id})
}

/// An error response to request `id`.
pub fn error_response(id: &Value, error: Value) -> Value {
    serde_json::json!({"result": null, "error": error, "id": id})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_values_cut_wherever_the_bytes_are_split() {
        let text = br#"{"method":"echo","params":[],"id":"echo"} [1,2] {"a":"}{"}"#;
        for cut in 0..text.len() {
            let mut f = Framer::default();
            let mut got = Vec::new();
            f.push(&text[..cut]);
            while let Some(v) = f.next_value().unwrap() {
                got.push(v);
            }
            f.push(&text[cut..]);
            while let Some(v) = f.next_value().unwrap() {
                got.push(v);
            }
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[2]["a"], "}{");
        }
        let mut f = Framer::default();
        f.push(b"  \n");
        assert_eq!(f.next_value().unwrap(), None);
        f.push(b"{\"x\": tru");
        assert_eq!(f.next_value().unwrap(), None);
        f.push(b"x}");
        assert!(f.next_value().unwrap_err().starts_with("not JSON"));
    }
}
