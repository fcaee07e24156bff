//! Where each value of a YAML document starts, by path: `nodes[0].pods[2].ip`
//! → line 52, column 55. serde gives locations only for the errors it finds
//! itself; the checks that run on the parsed cluster (config::check) use
//! this map to point at the object they name, in block and flow style
//! alike. The document is read a second time by an event parser
//! (yaml-rust2) that reports a mark for every scalar and collection.
//!
//! Keys are plain scalars (what the cluster YAML uses); a value under a
//! complex key, or an alias, is recorded at the alias. Only the first
//! document counts. A document the event parser refuses gives an empty map
//! (serde reports the syntax error first).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column (both 1-based) of every value, by path.
#[derive(Clone, Debug, Default)]
pub struct Positions {
    map: HashMap<String, (usize, usize)>,
}

enum Frame {
    /// A mapping at `path`; `key` is the key whose value comes next (None:
    /// a key comes next).
    Map { path: String, key: Option<String> },
    /// A sequence at `path`; `next` is the index of the next element.
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    map: HashMap<String, (usize, usize)>,
    done: bool,
    /// Record every document (`Positions::of_all`), not only the first.
    all: bool,
    /// The documents finished so far (`all`).
    docs: Vec<HashMap<String, (usize, usize)>>,
}

impl Recorder {
    /// The path of the value that starts now (None when it is a key, which
    /// is kept for the value that follows); advances the parent.
    fn value_path(&mut self, key_text: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    *key = Some(key_text.unwrap_or("?").to_string());
                    None
                }
                Some(k) => Some(if path.is_empty() { k } else { format!("{path}.{k}") }),
            },
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        // yaml-rust2 counts columns from 0.
        self.map.entry(path.to_string()).or_insert((mark.line(), mark.col() + 1));
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        match ev {
            Event::Scalar(text, ..) => {
                if let Some(p) = self.value_path(Some(&text)) {
                    self.record(&p, mark);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.value_path(Some("*")) {
                    self.record(&p, mark);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A collection as a key: its contents are not recorded.
                let path = self.value_path(None).unwrap_or_else(|| "\u{0}complex-key".into());
                self.record(&path, mark);
                self.stack.push(if is_map { Frame::Map { path, key: None } } else { Frame::Seq { path, next: 0 } });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => {
                if self.all {
                    self.docs.push(std::mem::take(&mut self.map));
                    self.stack.clear();
                } else {
                    self.done = true;
                }
            }
            _ => {}
        }
    }
}

impl Positions {
    /// The positions of `text`'s values (empty when it does not parse).
    pub fn of(text: &str) -> Positions {
        let mut r = Recorder::default();
        match Parser::new_from_str(text).load(&mut r, false) {
            Ok(()) => Positions { map: r.map },
            Err(_) => Positions::default(),
        }
    }

    /// The positions of each document of a stream (`---`-separated), in
    /// order; empty when the stream does not parse.
    pub fn of_all(text: &str) -> Vec<Positions> {
        let mut r = Recorder { all: true, ..Default::default() };
        match Parser::new_from_str(text).load(&mut r, true) {
            Ok(()) => r.docs.into_iter().map(|map| Positions { map }).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Where the value at `path` starts (`a.b[2].c`; `` for the document).
    pub fn get(&self, path: &str) -> Option<(usize, usize)> {
        self.map.get(path).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_block_and_flow() {
        let y = "a:\n  b: 1\n  c: [x, {d: 2, e: [3, 4]}]\nf:\n- g: 5\n  h: six\n- {g: 7}\n";
        let p = Positions::of(y);
        assert_eq!(p.get("a.b"), Some((2, 6)));
        assert_eq!(p.get("a.c[0]"), Some((3, 7)));
        assert_eq!(p.get("a.c[1].d"), Some((3, 14)));
        assert_eq!(p.get("a.c[1].e[1]"), Some((3, 24)));
        assert_eq!(p.get("f[0].h"), Some((6, 6)));
        assert_eq!(p.get("f[1].g"), Some((7, 7)));
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn test_documents() {
        let y = "a: 1\n---\nkind: List\nitems:\n- {b: 2}\n---\n{\"c\": [3]}\n";
        let d = Positions::of_all(y);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].get("a"), Some((1, 4)));
        assert_eq!(d[1].get("items[0].b"), Some((5, 7)));
        assert_eq!(d[2].get("c[0]"), Some((7, 8)));
    }
}
