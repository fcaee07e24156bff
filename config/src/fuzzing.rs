//! Properties the fuzz targets (`fuzz/`) and the bounded in-tree fuzz test
//! check on arbitrary input. Not part of the API.

use crate::ofctl::{parse_flow_file, parse_flow_line, FlowCommand, LineKind};
use crate::yaml::Cluster;

/// Flow text: parsing never panics, and for every parsed flow or group
/// print(parse(print(x))) == print(x).
///
/// # Panics
/// When the property fails (that is the point).
pub fn ofctl_roundtrip(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cmds) = parse_flow_file(text) else {
        return;
    };
    for (_, c) in cmds {
        let (spec, kind) = match c {
            FlowCommand::Add(s) => (s, LineKind::Add),
            FlowCommand::Modify { spec, .. } => (spec, LineKind::Match),
            FlowCommand::Delete { spec, .. } => (spec, LineKind::Match),
            FlowCommand::Group(g) => {
                let once = g.to_string();
                let again = parse_flow_file(&once)
                    .unwrap_or_else(|e| panic!("printed group does not parse: {once:?}: {e}"))
                    .into_iter()
                    .map(|(_, c)| match c {
                        FlowCommand::Group(g) => g.to_string(),
                        c => panic!("printed group parses as {c:?}"),
                    })
                    .collect::<Vec<_>>();
                assert_eq!(again, [once], "print/parse/print is not stable");
                continue;
            }
        };
        if kind == LineKind::Match {
            continue; // patterns print with actions=drop; only adds round-trip
        }
        let once = spec.to_dump_line(None);
        let again = parse_flow_line(&once, LineKind::Add)
            .unwrap_or_else(|e| panic!("printed flow does not parse: {once:?}: {e}"));
        let twice = again.to_dump_line(None);
        assert_eq!(once, twice, "print/parse/print is not stable");
    }
}

/// Cluster YAML: loading never panics; a loaded cluster renders every node
/// without panicking, and the rendered text parses back.
///
/// # Panics
/// When the property fails.
pub fn yaml_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Cluster::from_yaml(text) else {
        return;
    };
    let names: Vec<String> = c.host_subnets.iter().map(|h| h.metadata.name.clone()).collect();
    for n in names {
        if let Ok(r) = crate::render::render(&c, &n) {
            for f in r.flows {
                let line = f.to_dump_line(None);
                parse_flow_line(&line, LineKind::Add)
                    .unwrap_or_else(|e| panic!("rendered flow does not parse: {line}: {e}"));
            }
        }
    }
}
