//! Parser for ovs-ofctl flow text.
//!
//! Grammar (as ovs-ofctl's `parse_ofp_str`): a line is `key[=value]` items
//! separated by commas and/or blanks, then `actions=` and the action list to
//! the end of the line. Dump-flows lines parse too: `duration=`,
//! `n_packets=`, `n_bytes=`, `idle_age=` and `hard_age=` are accepted and
//! ignored. Files may prefix a line with `add`, `modify[_strict]`,
//! `delete[_strict]` (ovs-ofctl's per-line commands) or with `flow add` /
//! `flow delete` (the bundle syntax openshift-sdn writes), and carry
//! `group add|modify|delete` lines. Groups (`add-group` syntax) are parsed
//! at the end of this file; their model and printing are in `group`.
//!
//! Actions are checked as Open vSwitch checks them: where they may stand
//! (`ct(exec(...))` writes only `ct_mark`/`ct_label`, which nothing else
//! writes), and once the match is known, what they need of it (`ct` an IP
//! flow; reading the conntrack tuple its prerequisites).

use super::field::*;
use super::group::{Bucket, GroupCommand, GroupLineKind, GroupSpec, GroupType, OFPP_CONTROLLER};
use super::spec::*;
use crate::ParseError;

/// What the line is for: adds need actions; matches (delete, modify
/// patterns) may carry a cookie mask and may omit actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// A flow to add: `actions=` is required.
    Add,
    /// A pattern for delete/modify: `actions=` only for modify.
    Match,
}

/// One command of a flow file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowCommand {
    /// Add (or replace the identical-match flow).
    Add(FlowSpec),
    /// Modify actions of matching flows.
    Modify {
        /// Only the flow with this exact match and priority.
        strict: bool,
        /// Pattern and new actions.
        spec: FlowSpec,
    },
    /// Delete matching flows.
    Delete {
        /// Only the flow with this exact match and priority.
        strict: bool,
        /// Pattern.
        spec: FlowSpec,
    },
    /// A group command of a bundle (`group add|modify|delete ...`).
    Group(GroupCommand),
}

type Res<T> = Result<T, (usize, String)>;

fn err<T>(col: usize, msg: impl Into<String>) -> Res<T> {
    Err((col, msg.into()))
}

fn is_sep(c: u8) -> bool {
    c == b',' || c == b' ' || c == b'\t' || c == b'\r'
}

/// Parses an unsigned integer: decimal or `0x` hex.
fn parse_uint(s: &str, col: usize, what: &str) -> Res<u64> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse::<u64>()
    };
    match r {
        Ok(v) if !s.is_empty() && !s.starts_with('+') => Ok(v),
        _ => err(col, format!("expected {what} (a decimal or 0x-hex integer), found `{s}`")),
    }
}

fn parse_ip(s: &str, col: usize) -> Res<u64> {
    match s.parse::<std::net::Ipv4Addr>() {
        Ok(a) => Ok(u32::from(a) as u64),
        Err(_) => err(col, format!("expected an IPv4 address a.b.c.d, found `{s}`")),
    }
}

fn parse_mac(s: &str, col: usize) -> Res<u64> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return err(col, format!("expected an Ethernet address xx:xx:xx:xx:xx:xx, found `{s}`"));
    }
    let mut v = 0u64;
    for p in parts {
        if p.is_empty() || p.len() > 2 {
            return err(col, format!("expected an Ethernet address xx:xx:xx:xx:xx:xx, found `{s}`"));
        }
        match u8::from_str_radix(p, 16) {
            Ok(b) => v = (v << 8) | b as u64,
            Err(_) => return err(col, format!("expected an Ethernet address xx:xx:xx:xx:xx:xx, found `{s}`")),
        }
    }
    Ok(v)
}

/// Parses a 128-bit integer: decimal (up to 64 bits, as OVS) or `0x` hex
/// (up to 32 digits).
fn parse_u128(s: &str, col: usize, what: &str) -> Res<u128> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => u128::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<u64>().ok().map(u128::from),
        None => None,
    };
    match r {
        Some(v) => Ok(v),
        None => err(col, format!("expected {what} (a decimal or 0x-hex integer up to 128 bits), found `{s}`")),
    }
}

/// Parses `ct_label`'s `value[/mask]`, both 128 bits wide.
fn parse_label(s: &str, col: usize) -> Res<(u128, u128)> {
    let (vs, ms) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let v = parse_u128(vs, col, "a ct_label value")?;
    let m = match ms {
        Some(m) => parse_u128(m, col + vs.len() + 1, "a ct_label mask")?,
        None => u128::MAX,
    };
    Ok((v & m, m))
}

/// Parses `ct_state` in OVS's three forms: flags that must be set or
/// unset (`+trk-est`, the mask is the flags named), flags that are exactly
/// the state (`trk|est`, or a number; the mask is every flag), and
/// `VALUE/MASK` in numbers (`0x21/0x21`).
fn parse_ct_state(s: &str, col: usize) -> Res<(u64, u64)> {
    let flag = |name: &str| cs::NAMES.iter().find(|(_, n)| *n == name).map(|(b, _)| *b);
    let unknown = |at: usize, f: &str| {
        err(at, format!("unknown ct_state flag `{f}` (flags: new, est, rel, rpl, inv, trk, snat, dnat)"))
    };
    if let Some((v, m)) = s.split_once('/') {
        let mcol = col + v.len() + 1;
        let v = parse_uint(v, col, "a ct_state value")?;
        let m = parse_uint(m, mcol, "a ct_state mask")?;
        if v & !cs::ALL != 0 || m & !cs::ALL != 0 {
            return err(col, format!("ct_state `{s}` has bits beyond the 8 flags (0xff)"));
        }
        return Ok((v & m, m));
    }
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0, 0);
        let mut rest = s;
        while !rest.is_empty() {
            let at = col + s.len() - rest.len();
            let set = rest.starts_with('+');
            if !set && !rest.starts_with('-') {
                return err(at, format!("ct_state flag `{rest}` must be preceded by `+` (set) or `-` (not set)"));
            }
            let end = rest[1..].find(['+', '-']).map_or(rest.len(), |i| i + 1);
            let name = &rest[1..end];
            let Some(bit) = flag(name) else {
                return unknown(at + 1, name);
            };
            if m & bit != 0 {
                return err(at + 1, format!("ct_state flag `{name}` is given twice"));
            }
            m |= bit;
            if set {
                v |= bit;
            }
            rest = &rest[end..];
        }
        return Ok((v, m));
    }
    if s.is_empty() {
        return err(col, "expected ct_state flags (`+trk-est`, `trk|est` or `0x21/0x21`)");
    }
    let mut v = 0;
    let mut at = col;
    for part in s.split('|') {
        let bits = match flag(part) {
            Some(b) => b,
            None if part.starts_with(|c: char| c.is_ascii_digit()) => {
                let n = parse_uint(part, at, "a ct_state value")?;
                if n & !cs::ALL != 0 {
                    return err(at, format!("ct_state `{part}` has bits beyond the 8 flags (0xff)"));
                }
                n
            }
            None => return unknown(at, part),
        };
        v |= bits;
        at += part.len() + 1;
    }
    Ok((v, cs::ALL))
}

/// Parses `value[/mask]` of a field; returns (value, mask).
fn parse_field_value(field: Field, s: &str, col: usize) -> Res<(u64, u64)> {
    let full = field.full_mask();
    let (vs, ms) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    if ms.is_some() && !field.maskable() {
        return err(col, format!("field {} does not take a mask", field.name()));
    }
    let mcol = col + vs.len() + 1;
    match field.kind() {
        Kind::CtState => parse_ct_state(s, col),
        Kind::CtLabel => {
            let (v, m) = parse_label(s, col)?;
            Ok(if field == Field::CtLabelHi { ((v >> 64) as u64, (m >> 64) as u64) } else { (v as u64, m as u64) })
        }
        Kind::Frag => {
            if ms.is_some() {
                return err(col, "nw_frag takes a keyword, not a mask");
            }
            Ok(match s {
                "no" => (0, 3),
                "yes" => (FRAG_ANY, FRAG_ANY),
                "first" => (FRAG_ANY, 3),
                "later" => (3, 3),
                "not_later" => (0, FRAG_LATER),
                _ => return err(col, format!("expected one of no, yes, first, later, not_later; found `{s}`")),
            })
        }
        Kind::Ipv4 => {
            let v = parse_ip(vs, col)?;
            let m = match ms {
                None => 0xffff_ffff,
                Some(m) if m.contains('.') => parse_ip(m, mcol)?,
                Some(m) => match m.parse::<u32>() {
                    Ok(n) if n <= 32 => {
                        if n == 0 {
                            0
                        } else {
                            (u32::MAX << (32 - n)) as u64
                        }
                    }
                    _ => return err(mcol, format!("expected a prefix length 0..32 or a dotted mask, found `{m}`")),
                },
            };
            Ok((v & m, m))
        }
        Kind::Mac => {
            let v = parse_mac(vs, col)?;
            let m = match ms {
                None => full,
                Some(m) => parse_mac(m, mcol)?,
            };
            Ok((v & m, m))
        }
        Kind::Port => {
            let v = match vs {
                "LOCAL" => OFPP_LOCAL,
                "IN_PORT" => OFPP_IN_PORT,
                _ => parse_uint(vs, col, "a port number")?,
            };
            if v > full {
                return err(col, format!("port {v} is out of range"));
            }
            Ok((v, full))
        }
        Kind::Hex | Kind::Dec | Kind::EthType => {
            let v = parse_uint(vs, col, &format!("a value for {}", field.name()))?;
            let m = match ms {
                None => full,
                Some(m) => parse_uint(m, mcol, "a mask")?,
            };
            if field == Field::NwTos {
                if v & !0xfc != 0 {
                    return err(col, format!("nw_tos {v} is not a DSCP value (a multiple of 4 below 256)"));
                }
                return Ok((v, 0xfc));
            }
            if v & !full != 0 || m & !full != 0 {
                return err(
                    col,
                    format!("value `{s}` does not fit field {} ({} bits)", field.name(), full.count_ones()),
                );
            }
            Ok((v & m, m))
        }
    }
}

/// A piece of a line and the column it starts at.
struct Token<'a> {
    /// The text.
    text: &'a str,
    /// 1-based column of its first character.
    col: usize,
}

/// Splits `s` (starting at column `col0`) into items at top-level commas,
/// keeping brackets and parentheses together.
fn split_actions(s: &str, col0: usize) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b',' if depth <= 0 => {
                out.push(Token { text: &s[start..i], col: col0 + start });
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(Token { text: &s[start..], col: col0 + start });
    out
}

/// A subfield as written, before `ct_label` is cut into its halves: for
/// `ct_label` the field is [`Field::CtLabelLo`] and `ofs` counts all 128
/// bits. Also returns the column of the bit range, for errors.
fn parse_bits(s: &str, col: usize) -> Res<(SubField, usize)> {
    let Some(open) = s.find('[') else {
        return err(col, format!("expected a subfield such as NXM_NX_REG0[] or NXM_NX_TUN_ID[0..31], found `{s}`"));
    };
    if !s.ends_with(']') {
        return err(col + s.len(), format!("expected `]` to close subfield `{s}`"));
    }
    let name = &s[..open];
    let Some(field) = lookup_subfield_name(name) else {
        return err(col, format!("unknown field `{name}`"));
    };
    let range = &s[open + 1..s.len() - 1];
    let rcol = col + open + 1;
    let width = if field.kind() == Kind::CtLabel { 128 } else { field.n_bits() };
    let (ofs, n_bits) = if range.is_empty() {
        (0, width)
    } else if let Some((a, b)) = range.split_once("..") {
        let a = parse_uint(a, rcol, "a bit offset")?.min(1 << 16) as u32;
        let b = parse_uint(b, rcol, "a bit offset")?.min(1 << 16) as u32;
        if b < a {
            return err(rcol, format!("bit range `{range}` ends before it starts"));
        }
        (a, b - a + 1)
    } else {
        (parse_uint(range, rcol, "a bit offset")?.min(1 << 16) as u32, 1)
    };
    if ofs + n_bits > width {
        return err(rcol, format!("bits {}..{} do not fit {} ({} bits)", ofs, ofs + n_bits - 1, name, width));
    }
    let field = if field.kind() == Kind::CtLabel { Field::CtLabelLo } else { field };
    Ok((SubField { field, ofs, n_bits }, rcol))
}

/// A subfield that lies within one field of the model: `ct_label` ranges
/// must stay within one of its 64-bit halves.
fn half(sf: SubField, rcol: usize) -> Res<SubField> {
    if sf.field != Field::CtLabelLo {
        return Ok(sf);
    }
    match (sf.ofs, sf.ofs + sf.n_bits - 1) {
        (_, 0..=63) => Ok(sf),
        (64.., _) => Ok(SubField { field: Field::CtLabelHi, ofs: sf.ofs - 64, n_bits: sf.n_bits }),
        (a, b) => err(
            rcol,
            format!(
                "NXM_NX_CT_LABEL[{a}..{b}] crosses bit 63/64: sdnfwd keeps ct_label as two 64-bit halves, \
                 use a range within [0..63] or [64..127] here"
            ),
        ),
    }
}

fn parse_subfield(s: &str, col: usize) -> Res<SubField> {
    let (sf, rcol) = parse_bits(s, col)?;
    half(sf, rcol)
}

/// `set_field:V/M->ct_label` (and a `load` that crosses the halves): one
/// masked write per half, low half first, both always present so that the
/// printer can join them back; nothing when the mask is empty (OVS sends
/// no action then).
fn label_write(value: u128, mask: u128) -> Vec<Action> {
    if mask == 0 {
        return Vec::new();
    }
    let v = value & mask;
    vec![
        Action::SetField { field: Field::CtLabelLo, value: v as u64, mask: mask as u64 },
        Action::SetField { field: Field::CtLabelHi, value: (v >> 64) as u64, mask: (mask >> 64) as u64 },
    ]
}

fn parse_port(s: &str, col: usize) -> Res<u32> {
    match s {
        "LOCAL" => Ok(OFPP_LOCAL as u32),
        "IN_PORT" => Ok(OFPP_IN_PORT as u32),
        _ => {
            let v = parse_uint(s, col, "a port number")?;
            if v > 0xffff_ff00 {
                return err(col, format!("port {v} is out of range"));
            }
            Ok(v as u32)
        }
    }
}

/// Where an action list stands: a flow's instructions, a group bucket's
/// actions (no instructions), or `ct(exec(...))`, which may only write
/// `ct_mark` and `ct_label` (OVS's `ofpacts_verify_nested`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// `actions=` of a flow.
    Flow,
    /// `bucket=...` of a group.
    Bucket,
    /// `exec(...)` of `ct`.
    Exec,
}

/// What an action needs of the flow's match, checked once the match is
/// known (OVS's `ofpacts_check`, which refuses the flow with
/// `OFPBAC_MATCH_INCONSISTENT` or `OFPBMC_BAD_PREREQ`).
#[derive(Clone, Debug)]
enum Need {
    /// `ct`: an IP flow, and what OVS's `check_CT` asks of commit, alg and
    /// nat.
    Ct {
        /// Column of the action.
        col: usize,
        /// `commit` was given.
        commit: bool,
        /// The ALG's port.
        alg: Option<u16>,
        /// A `nat` with an IPv4 range, checked only with an immediate zone
        /// (as `check_CT`, which returns early after a zone subfield).
        nat_v4: bool,
    },
    /// An action reads a field with a prerequisite (`move` source, `ct`
    /// zone subfield).
    Read {
        /// Column of the subfield.
        col: usize,
        /// The field read.
        field: Field,
    },
}

/// One action as parsed: none (`drop`), one or more model actions, or a
/// `nat` (only inside `ct(exec(...))`).
enum Item {
    Drop,
    Push(Vec<Action>),
    Nat(Nat),
}

/// Whether an action may write `field` where it stands.
fn check_dst(field: Field, ctx: Ctx, col: usize) -> Res<()> {
    if field.read_only() {
        return err(col, format!("{} is read-only", field.name()));
    }
    match ctx {
        Ctx::Exec if !field.ct_only() => err(
            col,
            format!("ct action doesn't support nested modification of {} (only ct_mark and ct_label)", field.name()),
        ),
        Ctx::Flow | Ctx::Bucket if field.ct_only() => err(
            col,
            format!(
                "cannot set CT fields outside of ct action ({} is written with ct(commit,exec(...)))",
                field.name()
            ),
        ),
        _ => Ok(()),
    }
}

/// Splits `key=value`, `key:value` or `key(value)` as OVS's
/// `ofputil_parse_key_value` does; the value's column comes back too.
fn key_value(t: &str, col: usize) -> Res<(&str, Option<&str>, usize)> {
    match t.find(['=', ':', '(']) {
        None => Ok((t, None, col + t.len())),
        Some(i) if t.as_bytes()[i] == b'(' => {
            if !t.ends_with(')') {
                return err(col + i, format!("expected `)` to close `{}(` (found `{t}`)", &t[..i]));
            }
            Ok((&t[..i], Some(&t[i + 1..t.len() - 1]), col + i + 1))
        }
        Some(i) => Ok((&t[..i], Some(&t[i + 1..]), col + i + 1)),
    }
}

/// The items of a parenthesised list, trimmed, with their columns.
fn items(s: &str, col: usize) -> Vec<Token<'_>> {
    if s.trim().is_empty() {
        return Vec::new();
    }
    split_actions(s, col)
        .into_iter()
        .map(|t| {
            let lead = t.text.len() - t.text.trim_start().len();
            Token { text: t.text.trim(), col: t.col + lead }
        })
        .collect()
}

/// A `nat` address range and port range, as [`Nat`] holds them.
type NatRange = (Option<(u32, u32)>, Option<(u16, u16)>);

/// Parses `A[-B][:P[-Q]]`, an IPv4 address range and an optional port
/// range, as OVS's `str_to_nat_range`; then normalises it as OVS's
/// encoding does (a first address 0.0.0.0 is no range; a first port 0 is
/// no port range).
fn parse_nat_range(s: &str, col: usize) -> Res<NatRange> {
    if s.is_empty() {
        return Ok((None, None));
    }
    if s.starts_with('[') || s.matches(':').count() > 1 {
        return err(col, format!("nat range `{s}` is IPv6: sdnfwd translates IPv4 only"));
    }
    let bad = || err(col, format!("invalid nat range `{s}` (expected A[-B][:P[-Q]] with A <= B, P <= Q)"));
    let (addrs, ports) = match s.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip = |t: &str| t.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
    let (a, b) = match addrs.split_once('-') {
        Some((a, b)) => (ip(a), Some(ip(b))),
        None => (ip(addrs), None),
    };
    let Some(a) = a else { return bad() };
    let b = match b {
        Some(Some(b)) if b >= a => Some(b),
        Some(_) => return bad(),
        None => None,
    };
    let port = |t: &str| if t.bytes().all(|c| c.is_ascii_digit()) { t.parse::<u16>().ok() } else { None };
    let ports = match ports {
        None => None,
        Some(p) => {
            let (p, q) = match p.split_once('-') {
                Some((p, q)) => (port(p), Some(port(q))),
                None => (port(p), None),
            };
            let Some(p) = p else { return bad() };
            match q {
                Some(Some(q)) if q >= p => Some((p, q)),
                Some(_) => return bad(),
                None => Some((p, p)),
            }
        }
    };
    let ports = match ports {
        Some((0, 0)) | None => None,
        Some((0, _)) => {
            return err(col, format!("nat range `{s}`: a port range must start above 0 (OVS cannot send it)"));
        }
        p => p,
    };
    let addrs = match (a, b) {
        (0, Some(b)) if b != 0 => {
            return err(
                col,
                format!("nat range `{s}`: an address range must start above 0.0.0.0 (OVS cannot send it)"),
            );
        }
        (0, _) if ports.is_some() => {
            return err(
                col,
                format!("nat range `{s}`: ports need an address other than 0.0.0.0 (OVS cannot send them)"),
            );
        }
        (0, _) => None,
        (a, b) => Some((a, b.unwrap_or(a))),
    };
    Ok((addrs, ports))
}

/// Parses `nat` (no argument) or the inside of `nat(...)`, as OVS's
/// `parse_NAT`.
fn parse_nat(arg: Option<&str>, col: usize) -> Res<Nat> {
    let mut nat = Nat::default();
    let Some(arg) = arg else {
        return Ok(nat);
    };
    let (mut src, mut dst) = (false, false);
    for t in items(arg, col) {
        let (key, val, vcol) = key_value(t.text, t.col)?;
        match key {
            "src" | "dst" => {
                src |= key == "src";
                dst |= key == "dst";
                if src && dst {
                    return err(t.col, "nat takes only one of `src` or `dst`");
                }
                nat.kind = Some(if src { NatKind::Src } else { NatKind::Dst });
                (nat.addrs, nat.ports) = parse_nat_range(val.unwrap_or(""), vcol)?;
            }
            "persistent" => nat.persistent = true,
            "hash" => nat.hash = true,
            "random" => nat.random = true,
            _ => return err(t.col, format!("invalid key `{key}` in nat (src=, dst=, persistent, hash, random)")),
        }
    }
    if nat.kind.is_none() && (nat.persistent || nat.hash || nat.random) {
        return err(col, "nat flags (persistent, hash, random) are allowed only with `src` or `dst`");
    }
    if nat.hash && nat.random {
        return err(col, "nat takes `hash` or `random`, not both");
    }
    Ok(nat)
}

/// Parses the inside of `ct(...)` as OVS's `parse_CT`, then refuses what
/// the switch would refuse (`decode_NXAST_RAW_CT`, `decode_ct_zone`).
fn parse_ct(arg: &str, col: usize, needs: &mut Vec<Need>) -> Res<CtAction> {
    let mut ct = CtAction {
        commit: false,
        force: false,
        table: None,
        zone: CtZone::Imm(0),
        nat: None,
        exec: Vec::new(),
        alg: None,
    };
    let mut nat_col = col;
    let mut set_nat = |ct: &mut CtAction, nat: Nat, at: usize| {
        if ct.nat.is_some() {
            return err(at, "ct takes one nat (sdnfwd refuses a second one, which OVS would run after the first)");
        }
        ct.nat = Some(nat);
        nat_col = at;
        Ok(())
    };
    for t in items(arg, col) {
        let (key, val, vcol) = key_value(t.text, t.col)?;
        let need = || val.ok_or_else(|| (t.col, format!("ct's `{key}` needs a value (`{key}=...`)")));
        match key {
            "commit" => ct.commit = true,
            "force" => ct.force = true,
            "table" => {
                let v = parse_uint(need()?, vcol, "a table number")?;
                if v > 254 {
                    return err(vcol, format!("ct table {v} is out of range (0..254; 255 means none)"));
                }
                ct.table = Some(v as u8);
            }
            "zone" => {
                let v = need()?;
                ct.zone = match parse_uint(v, vcol, "a zone") {
                    Ok(z) if z <= 0xffff => CtZone::Imm(z as u16),
                    _ if v.contains('[') => {
                        let sf = parse_subfield(v, vcol)?;
                        if sf.n_bits != 16 {
                            return err(vcol, format!("zone subfield `{v}` is {} bits; a zone is 16 bits", sf.n_bits));
                        }
                        needs.push(Need::Read { col: vcol, field: sf.field });
                        CtZone::Field(sf)
                    }
                    _ => return err(vcol, format!("zone `{v}` is neither a number 0..65535 nor a 16-bit subfield")),
                };
            }
            "alg" => {
                ct.alg = Some(match need()? {
                    "ftp" => 21,
                    "tftp" => 69,
                    v => return err(vcol, format!("invalid conntrack helper `{v}` (alg=ftp or alg=tftp)")),
                });
            }
            "nat" => {
                let nat = parse_nat(val, vcol)?;
                set_nat(&mut ct, nat, t.col)?;
            }
            "exec" => {
                let mut drop = false;
                for a in items(val.unwrap_or(""), vcol) {
                    match parse_action(&a, Ctx::Exec, needs)? {
                        Item::Drop => drop = true,
                        Item::Push(v) => ct.exec.extend(v),
                        Item::Nat(nat) => set_nat(&mut ct, nat, a.col)?,
                    }
                }
                if drop && !ct.exec.is_empty() {
                    return err(vcol, "`drop` must be the only action");
                }
            }
            _ => return err(t.col, format!("invalid argument to ct: `{key}`")),
        }
    }
    if ct.force && !ct.commit {
        return err(col, "ct's `force` needs `commit`");
    }
    let nat_args = ct.nat.is_some_and(|n| n.kind.is_some());
    if !ct.commit && (nat_args || !ct.exec.is_empty()) {
        let at = if ct.exec.is_empty() { nat_col } else { col };
        return err(at, "ct needs `commit` for exec(...) or a nat with arguments (OVS refuses the flow otherwise)");
    }
    let nat_v4 = ct.nat.is_some_and(|n| n.addrs.is_some()) && matches!(ct.zone, CtZone::Imm(_));
    needs.push(Need::Ct { col: col - 3, commit: ct.commit, alg: ct.alg, nat_v4 });
    Ok(ct)
}

fn parse_action<'a>(tok: &Token<'a>, ctx: Ctx, needs: &mut Vec<Need>) -> Res<Item> {
    let t = tok.text.trim_matches(|c| c == ' ' || c == '\t');
    let col = tok.col + (tok.text.len() - tok.text.trim_start_matches([' ', '\t']).len());
    if t.is_empty() {
        return err(col, "empty action");
    }
    let (name, arg) = match t.find([':', '(']) {
        Some(i) if t.as_bytes()[i] == b':' => (&t[..i], Some(&t[i + 1..])),
        Some(i) if matches!(&t[..i], "ct" | "nat" | "resubmit") => {
            if !t.ends_with(')') {
                return err(col + i, format!("expected `)` to close `{}(`", &t[..i]));
            }
            (&t[..i], Some(&t[i + 1..t.len() - 1]))
        }
        Some(i) => return err(col + i, format!("unsupported action `{}`", &t[..i])),
        None => (t, None),
    };
    let acol = col + name.len() + 1;
    let need = |a: Option<&'a str>| -> Res<&'a str> {
        a.ok_or_else(|| (col, format!("action `{name}` needs an argument (`{name}:...`)")))
    };
    let is_port = name.bytes().all(|b| b.is_ascii_digit()) || matches!(name, "IN_PORT" | "LOCAL");
    let writes = matches!(name, "move" | "load" | "set_field" | "nat" | "drop");
    if ctx == Ctx::Exec && !writes {
        let what = if is_port { "output" } else { name };
        return err(col, format!("ct action doesn't support nested action {what} (exec takes set_field, load and move to ct_mark and ct_label)"));
    }
    Ok(Item::Push(vec![match name {
        "drop" => {
            if arg.is_some() {
                return err(col, "`drop` takes no argument");
            }
            return Ok(Item::Drop);
        }
        "output" => {
            let a = need(arg)?;
            if a.contains('[') {
                Action::OutputReg(parse_subfield(a, acol)?)
            } else {
                Action::Output(parse_port(a, acol)?)
            }
        }
        "IN_PORT" | "LOCAL" if arg.is_none() => Action::Output(parse_port(name, col)?),
        "in_port" if arg.is_none() => Action::Output(OFPP_IN_PORT as u32),
        "resubmit" => {
            let a = need(arg)?;
            // `resubmit:PORT`, `resubmit(PORT)`, or `resubmit(PORT,TABLE)`
            // with either empty (as ovs-ofctl reads it).
            let (p, tb) = match a.split_once(',') {
                Some((p, tb)) if t.as_bytes()[name.len()] != b':' => (p, Some(tb)),
                _ => (a, None),
            };
            let port = if p.trim().is_empty() { None } else { Some(parse_port(p.trim(), acol)?) };
            let table = match tb.map(str::trim) {
                None | Some("") => None,
                Some(tb) => {
                    let tcol = acol + p.len() + 1;
                    let v = parse_uint(tb, tcol, "a table number")?;
                    if v > 254 {
                        return err(tcol, format!("table {v} is out of range (0..254)"));
                    }
                    Some(v as u8)
                }
            };
            if port.is_none() && table.is_none() {
                return err(acol, "resubmit needs a port, a table or both");
            }
            Action::Resubmit { port, table }
        }
        n if arg.is_none() && n.bytes().all(|b| b.is_ascii_digit()) => Action::Output(parse_port(n, col)?),
        "goto_table" => {
            if ctx == Ctx::Bucket {
                return err(col, "goto_table is an instruction; a group bucket takes actions only");
            }
            let a = need(arg)?;
            let v = parse_uint(a, acol, "a table number")?;
            if v > 254 {
                return err(acol, format!("table {v} is out of range (0..254)"));
            }
            Action::GotoTable(v as u8)
        }
        "move" => {
            let a = need(arg)?;
            let Some((s, d)) = a.split_once("->") else {
                return err(acol, "expected `move:SRC[..]->DST[..]`");
            };
            let src = parse_subfield(s, acol)?;
            let dcol = acol + s.len() + 2;
            let dst = parse_subfield(d, dcol)?;
            if src.n_bits != dst.n_bits {
                return err(acol, format!("source is {} bits but destination is {} bits", src.n_bits, dst.n_bits));
            }
            check_dst(dst.field, ctx, dcol)?;
            needs.push(Need::Read { col: acol, field: src.field });
            Action::Move { src, dst }
        }
        "load" => {
            let a = need(arg)?;
            let Some((v, d)) = a.split_once("->") else {
                return err(acol, "expected `load:VALUE->DST[..]`");
            };
            let dcol = acol + v.len() + 2;
            let (dst, rcol) = parse_bits(d, dcol)?;
            check_dst(dst.field, ctx, dcol)?;
            let value = if dst.field == Field::CtLabelLo {
                parse_u128(v, acol, "a value")?
            } else {
                parse_uint(v, acol, "a value")? as u128
            };
            if dst.n_bits < 128 && value >> dst.n_bits != 0 {
                return err(acol, format!("value {v} does not fit in {} bits", dst.n_bits));
            }
            if dst.field == Field::CtLabelLo && dst.n_bits == 128 {
                // As OVS sends it: two 64-bit loads.
                let lo = SubField { field: Field::CtLabelLo, ofs: 0, n_bits: 64 };
                let hi = SubField { field: Field::CtLabelHi, ofs: 0, n_bits: 64 };
                return Ok(Item::Push(vec![
                    Action::Load { value: value as u64, dst: lo },
                    Action::Load { value: (value >> 64) as u64, dst: hi },
                ]));
            }
            if dst.field == Field::CtLabelLo && dst.ofs < 64 && dst.ofs + dst.n_bits > 64 {
                let mask = (u128::MAX >> (128 - dst.n_bits)) << dst.ofs;
                return Ok(Item::Push(label_write(value << dst.ofs, mask)));
            }
            Action::Load { value: value as u64, dst: half(dst, rcol)? }
        }
        "set_field" => {
            let a = need(arg)?;
            let Some((v, fname)) = a.rsplit_once("->") else {
                return err(acol, "expected `set_field:VALUE->FIELD`");
            };
            let fcol = acol + v.len() + 2;
            let field = match lookup_match_field(fname) {
                Some((f, _)) => f,
                None => match lookup_subfield_name(fname) {
                    Some(f) => f,
                    None => return err(fcol, format!("unknown field `{fname}`")),
                },
            };
            if field == Field::InPort {
                return err(fcol, format!("field `{fname}` cannot be set"));
            }
            check_dst(field, ctx, fcol)?;
            if field.kind() == Kind::CtLabel {
                let (value, mask) = parse_label(v, acol)?;
                return Ok(Item::Push(label_write(value, mask)));
            }
            let (value, mask) = parse_field_value(field, v, acol)?;
            if field.ct_only() && mask == 0 {
                return Ok(Item::Push(Vec::new()));
            }
            Action::SetField { field, value, mask }
        }
        "note" => {
            let a = need(arg)?;
            let mut bytes = Vec::new();
            let hex: String = a.chars().filter(|&c| c != '.').collect();
            if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return err(acol, format!("expected hex bytes such as 01.07 after `note:`, found `{a}`"));
            }
            for i in (0..hex.len()).step_by(2) {
                bytes.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0));
            }
            Action::Note(padded_note(&bytes))
        }
        "ct" => Action::Ct(Box::new(parse_ct(arg.unwrap_or(""), col + 3, needs)?)),
        "ct_clear" => {
            if arg.is_some() {
                return err(col, "`ct_clear` takes no argument");
            }
            Action::CtClear
        }
        "nat" if ctx == Ctx::Exec => return Ok(Item::Nat(parse_nat(arg, acol)?)),
        "nat" => return err(col, "nat is written inside ct: ct(commit,nat(...))"),
        "group" => {
            let a = need(arg)?;
            let v = parse_uint(a, acol, "a group id")?;
            if v > 0xffff_ff00 {
                return err(acol, format!("group {v} is out of range (0..4294967040)"));
            }
            Action::Group(v as u32)
        }
        _ => return err(col, format!("unsupported action `{name}`")),
    }]))
}

/// Parses an action list (a flow's `actions=` or a bucket's actions).
fn parse_actions(s: &str, col0: usize, ctx: Ctx, needs: &mut Vec<Need>) -> Res<Vec<Action>> {
    parse_action_list(&split_actions(s, col0), col0, ctx, needs)
}

/// Parses actions already split into items; `col0` is where the list
/// starts, for an error about the list as a whole.
fn parse_action_list(toks: &[Token<'_>], col0: usize, ctx: Ctx, needs: &mut Vec<Need>) -> Res<Vec<Action>> {
    let mut out = Vec::new();
    let mut saw_drop = false;
    let mut cols = Vec::new();
    for t in toks {
        match parse_action(t, ctx, needs)? {
            Item::Push(a) => {
                cols.extend(a.iter().map(|_| t.col));
                out.extend(a);
            }
            Item::Drop => saw_drop = true,
            Item::Nat(_) => return err(t.col, "nat is written inside ct: ct(commit,nat(...))"),
        }
    }
    if saw_drop && !out.is_empty() {
        return err(col0, "`drop` must be the only action");
    }
    if let Some(i) = out.iter().position(|a| matches!(a, Action::GotoTable(_))) {
        if i + 1 != out.len() {
            return err(cols[i], "goto_table must be the last action (it is an instruction)");
        }
    }
    Ok(out)
}

/// Checks what the actions need of the match, as OVS's `ofpacts_check`
/// does when the flow reaches the switch.
fn check_needs(m: &Match, needs: &[Need]) -> Res<()> {
    let dl = m.get(Field::DlType);
    let ip = dl == (ETH_TYPE_IP, 0xffff);
    let ip_any = ip || dl == (ETH_TYPE_IPV6, 0xffff);
    let proto = m.get(Field::NwProto).0;
    let state = m.get(Field::CtState).0;
    for n in needs {
        match *n {
            Need::Ct { col, commit, alg, nat_v4 } => {
                let why = if !ip_any {
                    "ct needs an IP flow: add `ip` (or `ipv6`) to the match"
                } else if commit && state & cs::INV != 0 {
                    "ct(commit) cannot commit a flow that matches +inv"
                } else if alg == Some(21) && !(ip && proto == IPPROTO_TCP) {
                    "ct's alg=ftp needs `tcp` in the match"
                } else if alg == Some(69) && !(ip && proto == IPPROTO_UDP) {
                    "ct's alg=tftp needs `udp` in the match"
                } else if nat_v4 && !ip {
                    "nat with an IPv4 range needs `ip` in the match"
                } else {
                    continue;
                };
                return err(col, format!("{why} (OVS refuses it: OFPBAC_MATCH_INCONSISTENT)"));
            }
            Need::Read { col, field } => {
                let p = Pending { name: format!("reading {}", field.name()), prereq: field.read_prereq(), col };
                check_prereqs(m, std::slice::from_ref(&p))?;
            }
        }
    }
    Ok(())
}

/// A prerequisite to check once the whole match is known.
struct Pending {
    name: String,
    prereq: Prereq,
    col: usize,
}

fn check_prereqs(m: &Match, pend: &[Pending]) -> Res<()> {
    let ip = m.is_exact(Field::DlType, ETH_TYPE_IP);
    let ct_what = "a ct_state that implies a connection (+new, +est, +rel, +rpl, +snat, +dnat or +trk-inv)";
    for p in pend {
        if m.meets(p.prereq) {
            continue;
        }
        let what = match p.prereq {
            Prereq::CtIp if !ip => "`ip` (dl_type=0x0800)",
            Prereq::CtProto if m.get(Field::CtNwProto).1 == 0 => "ct_nw_proto",
            Prereq::Ct | Prereq::CtIp | Prereq::CtProto => ct_what,
            Prereq::None => "",
            Prereq::Ip => "`ip` (dl_type=0x0800)",
            Prereq::Arp => "`arp` (dl_type=0x0806)",
            Prereq::IpOrArp => "`ip` or `arp`",
            Prereq::L4 => "`tcp`, `udp` or `sctp`",
            Prereq::Proto(IPPROTO_TCP) => "`tcp`",
            Prereq::Proto(IPPROTO_UDP) => "`udp`",
            Prereq::Proto(_) => "`icmp`",
        };
        return err(p.col, format!("{} requires {} in the match (prerequisite not met)", p.name, what));
    }
    Ok(())
}

fn set_once(m: &mut Match, field: Field, v: u64, mask: u64, col: usize, name: &str) -> Res<()> {
    let (ov, om) = m.get(field);
    if om != 0 && (ov, om) != (v & mask & field.full_mask(), mask & field.full_mask()) {
        return err(col, format!("`{name}` conflicts with an earlier value of {}", field.name()));
    }
    m.set_masked(field, v, mask);
    Ok(())
}

/// Parses one flow line (no command prefix) into a [`FlowSpec`].
fn parse_spec(line: &str, kind: LineKind, trace: bool) -> Res<FlowSpec> {
    let mut spec = FlowSpec::default();
    let mut pend: Vec<Pending> = Vec::new();
    let mut needs: Vec<Need> = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut actions_seen = false;
    while i < bytes.len() {
        while i < bytes.len() && is_sep(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let col = i + 1;
        let rest = &line[i..];
        if let Some(a) = rest.strip_prefix("actions=").or_else(|| rest.strip_prefix("action=")) {
            if trace {
                return err(col, "a trace flow takes no actions");
            }
            let acol = col + (rest.len() - a.len());
            spec.actions = parse_actions(a.trim_end(), acol, Ctx::Flow, &mut needs)?;
            actions_seen = true;
            break;
        }
        let mut j = i;
        while j < bytes.len() && !is_sep(bytes[j]) {
            j += 1;
        }
        let tok = &line[i..j];
        i = j;
        let (key, val) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        };
        let vcol = col + key.len() + 1;
        let need = || -> Res<&str> { val.ok_or_else(|| (col, format!("`{key}` needs a value (`{key}=...`)"))) };
        let meta_ok = !trace;
        match key {
            "ip" | "arp" | "tcp" | "udp" | "icmp" | "igmp" | "sctp" | "ipv6" | "rarp" if val.is_none() => {
                let (dl, proto) = match key {
                    "ip" => (ETH_TYPE_IP, None),
                    "arp" => (ETH_TYPE_ARP, None),
                    "ipv6" => (ETH_TYPE_IPV6, None),
                    "rarp" => (0x8035, None),
                    "tcp" => (ETH_TYPE_IP, Some(IPPROTO_TCP)),
                    "udp" => (ETH_TYPE_IP, Some(IPPROTO_UDP)),
                    "igmp" => (ETH_TYPE_IP, Some(2)),
                    "sctp" => (ETH_TYPE_IP, Some(132)),
                    _ => (ETH_TYPE_IP, Some(IPPROTO_ICMP)),
                };
                set_once(&mut spec.m, Field::DlType, dl, u64::MAX, col, key)?;
                if let Some(p) = proto {
                    set_once(&mut spec.m, Field::NwProto, p, u64::MAX, col, key)?;
                }
            }
            "table" if meta_ok => {
                let v = parse_uint(need()?, vcol, "a table number")?;
                match v {
                    0..=254 => {
                        spec.table = v as u8;
                        spec.table_given = true;
                    }
                    255 if kind == LineKind::Match => spec.table_given = false,
                    _ => return err(vcol, format!("table {v} is out of range (0..254)")),
                }
            }
            "priority" if meta_ok => {
                let v = parse_uint(need()?, vcol, "a priority")?;
                if v > 65535 {
                    return err(vcol, format!("priority {v} is out of range (0..65535)"));
                }
                spec.priority = v as u16;
            }
            "cookie" if meta_ok => {
                let v = need()?;
                match v.split_once('/') {
                    Some((c, m)) => {
                        if kind == LineKind::Add {
                            return err(vcol, "a cookie mask is only allowed when deleting or modifying flows");
                        }
                        spec.cookie = parse_uint(c, vcol, "a cookie")?;
                        spec.cookie_mask = parse_uint(m, vcol + c.len() + 1, "a cookie mask")?;
                        spec.cookie &= spec.cookie_mask;
                    }
                    None => {
                        spec.cookie = parse_uint(v, vcol, "a cookie")?;
                        if kind == LineKind::Match {
                            spec.cookie_mask = u64::MAX;
                        }
                    }
                }
            }
            "idle_timeout" | "hard_timeout" if meta_ok => {
                let v = parse_uint(need()?, vcol, "a timeout in seconds")?;
                if v > 65535 {
                    return err(vcol, format!("timeout {v} is out of range (0..65535)"));
                }
                if key == "idle_timeout" {
                    spec.idle_timeout = v as u16;
                } else {
                    spec.hard_timeout = v as u16;
                }
            }
            "importance" if meta_ok => {
                let v = parse_uint(need()?, vcol, "an importance")?;
                if v > 65535 {
                    return err(vcol, format!("importance {v} is out of range (0..65535)"));
                }
                spec.importance = v as u16;
            }
            "out_port" if meta_ok && kind == LineKind::Match => {
                let v = need()?;
                spec.out_port = match v {
                    "ANY" | "NONE" => None,
                    _ => Some(parse_port(v, vcol)?),
                };
            }
            "out_group" if meta_ok && kind == LineKind::Match => {
                let v = need()?;
                spec.out_group = match v {
                    "ANY" => None,
                    _ => {
                        let g = parse_uint(v, vcol, "a group id")?;
                        if g > 0xffff_ff00 {
                            return err(vcol, format!("group {g} is out of range (0..4294967040)"));
                        }
                        Some(g as u32)
                    }
                };
            }
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" if meta_ok => {
                need()?;
            }
            "send_flow_rem" | "check_overlap" | "reset_counts" | "no_packet_counts" | "no_byte_counts"
                if meta_ok && val.is_none() =>
            {
                spec.flags |= ff::NAMES.iter().find(|(_, n)| *n == key).map_or(0, |(b, _)| *b);
            }
            _ => {
                let Some((field, prereq)) = lookup_match_field(key) else {
                    return err(col, format!("unknown field or keyword `{key}`"));
                };
                let halves: &[Field] =
                    if field.kind() == Kind::CtLabel { &[Field::CtLabelLo, Field::CtLabelHi] } else { &[field] };
                for &field in halves {
                    let (v, m) = parse_field_value(field, need()?, vcol)?;
                    if matches!(key, "icmp_type" | "icmp_code") && m != field.full_mask() {
                        return err(vcol, format!("{key} does not take a mask"));
                    }
                    if trace && m != field.full_mask() {
                        return err(vcol, format!("a trace flow gives exact values; `{tok}` has a mask"));
                    }
                    if field == Field::CtNwProto && v == 0 {
                        return err(vcol, "ct_nw_proto=0 never matches (OVS drops it from the flow); leave it out");
                    }
                    set_once(&mut spec.m, field, v, m, col, key)?;
                }
                pend.push(Pending { name: key.to_string(), prereq, col });
            }
        }
    }
    if kind == LineKind::Add && !actions_seen && !trace {
        return err(line.len() + 1, "expected `actions=` (an added flow needs actions; write `actions=drop` to drop)");
    }
    check_prereqs(&spec.m, &pend)?;
    check_needs(&spec.m, &needs)?;
    Ok(spec)
}

fn to_parse_error(line_no: usize, (col, msg): (usize, String)) -> ParseError {
    ParseError::new(line_no, col, msg)
}

/// Parses a single flow (add syntax or a delete/modify pattern).
///
/// # Errors
/// A [`ParseError`] on line 1 with the column of the offending item.
pub fn parse_flow_line(line: &str, kind: LineKind) -> Result<FlowSpec, ParseError> {
    parse_spec(line, kind, false).map_err(|e| to_parse_error(1, e))
}

/// Parses a flow in ofproto/trace syntax (`in_port=3,tcp,nw_dst=...`):
/// exact values only; unmentioned fields are zero.
///
/// # Errors
/// A [`ParseError`] for unknown fields, masks, or unmet prerequisites.
pub fn parse_trace_flow(text: &str) -> Result<Match, ParseError> {
    parse_spec(text.trim(), LineKind::Match, true).map(|s| s.m).map_err(|e| to_parse_error(1, e))
}

/// Parses a flow file: one flow per line, `#` comments and blank lines
/// skipped, dump-flows headers (`OFPST_FLOW reply`, `NXST_FLOW reply`)
/// skipped, optional per-line command prefixes. Bundle lines `group add
/// ...`, `group modify ...` and `group delete [group_id=N]` (as
/// openshift-sdn writes them) become [`FlowCommand::Group`]. Returns each
/// command with its 1-based line number.
///
/// # Errors
/// The first bad line, as `line:col: message` (the caller names the file).
pub fn parse_flow_file(text: &str) -> Result<Vec<(usize, FlowCommand)>, ParseError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = raw.trim_start();
        let lead = raw.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with("OFPST_FLOW reply") || trimmed.starts_with("NXST_FLOW reply") {
            continue;
        }
        let mut body = trimmed;
        let mut off = lead;
        let word = |body: &mut &str, off: &mut usize| -> Option<String> {
            let w: String = body.chars().take_while(|c| c.is_ascii_alphabetic() || *c == '_').collect();
            let after = &body[w.len()..];
            if !w.is_empty() && (after.is_empty() || after.starts_with([' ', '\t'])) {
                let rest = after.trim_start();
                *off += body.len() - rest.len();
                *body = rest;
                Some(w)
            } else {
                None
            }
        };
        let mut cmd = None;
        let save = (body, off);
        if let Some(w) = word(&mut body, &mut off) {
            if w == "group" {
                let kind = match word(&mut body, &mut off).as_deref() {
                    None | Some("add") => GroupLineKind::Add,
                    Some("modify") => GroupLineKind::Modify,
                    Some("delete") => GroupLineKind::Delete,
                    Some(w) => {
                        let msg = format!("unsupported group command `{w}` (add, modify or delete)");
                        return Err(ParseError::new(line_no, lead + 7, msg));
                    }
                };
                let g = parse_group(body, off + 1, kind).map_err(|(col, msg)| ParseError::new(line_no, col, msg))?;
                out.push((line_no, FlowCommand::Group(g)));
                continue;
            }
            let w = if w == "flow" { word(&mut body, &mut off).unwrap_or_default() } else { w };
            cmd = match w.as_str() {
                "add" => Some((LineKind::Add, 0)),
                "modify" => Some((LineKind::Match, 1)),
                "modify_strict" => Some((LineKind::Match, 2)),
                "delete" => Some((LineKind::Match, 3)),
                "delete_strict" => Some((LineKind::Match, 4)),
                _ => None,
            };
        }
        if cmd.is_none() {
            (body, off) = save;
        }
        let (kind, c) = cmd.unwrap_or((LineKind::Add, 0));
        let spec = parse_spec(body, kind, false).map_err(|(col, msg)| ParseError::new(line_no, col + off, msg))?;
        if c == 1 || c == 2 {
            if spec.actions.is_empty() && !body.contains("actions") {
                return Err(ParseError::new(line_no, off + 1, "modify needs `actions=`"));
            }
        } else if (c == 3 || c == 4) && body.contains("actions=") {
            return Err(ParseError::new(line_no, off + 1, "delete takes no `actions=`"));
        }
        out.push((
            line_no,
            match c {
                0 => FlowCommand::Add(spec),
                1 | 2 => FlowCommand::Modify { strict: c == 2, spec },
                _ => FlowCommand::Delete { strict: c == 4, spec },
            },
        ));
    }
    Ok(out)
}

// Groups, as OVS's `parse_ofp_group_mod_str`: the group's keywords
// (`group_id`, `type`, `selection_method`, `fields`) come before the first
// `bucket=`, which starts the buckets (OVS cuts the line at each
// `bucket=`); a bucket's `weight:`, `watch_port:`, `watch_group:` and
// `bucket_id:` may stand anywhere among its actions, and everything else in
// it is an action (`actions=` is optional).

/// OVS's `OFPG_MAX`: the highest group id (and bucket id).
const OFPG_MAX: u64 = 0xffff_ff00;
/// OVS's `OFPP_MAX`: watch ports are below it.
const OFPP_MAX: u64 = 0xff00;

/// Splits the group's keywords at commas and blanks outside parentheses.
fn words(s: &str, col0: usize) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b',' | b' ' | b'\t' | b'\r' if depth <= 0 => {
                if i > start {
                    out.push(Token { text: &s[start..i], col: col0 + start });
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if s.len() > start {
        out.push(Token { text: &s[start..], col: col0 + start });
    }
    out
}

fn parse_fields(v: &str, col: usize) -> Res<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in items(v, col) {
        let (name, mask, _) = key_value(t.text, t.col)?;
        if lookup_match_field(name).is_none() {
            return err(t.col, format!("unknown field `{name}` in fields(...)"));
        }
        if out.iter().any(|f| f.split('=').next() == Some(name)) {
            return err(t.col, format!("field `{name}` is given twice in fields(...)"));
        }
        out.push(match mask {
            Some(m) => format!("{name}={m}"),
            None => name.to_string(),
        });
    }
    Ok(out)
}

fn parse_bucket(text: &str, col: usize, kind: GroupType) -> Res<Bucket> {
    let mut b = Bucket::default();
    let mut acts: Vec<Token<'_>> = Vec::new();
    for t in words(text, col) {
        let (key, val, vcol) = key_value(t.text, t.col)?;
        let need = || val.ok_or_else(|| (t.col, format!("bucket's `{key}` needs a value (`{key}:...`)")));
        match key {
            "weight" => {
                let w = parse_uint(need()?, vcol, "a weight")?;
                if w > 0xffff {
                    return err(vcol, format!("weight {w} is out of range (0..65535)"));
                }
                if w != 0 && kind != GroupType::Select {
                    return err(t.col, "only select groups can have bucket weights");
                }
                b.weight = (w as u16 != kind.default_weight()).then_some(w as u16);
            }
            "watch_port" => {
                b.watch_port = match need()? {
                    "ANY" | "any" => None,
                    "CONTROLLER" | "controller" => Some(OFPP_CONTROLLER),
                    v => {
                        let p = parse_uint(v, vcol, "a port number")?;
                        if p >= OFPP_MAX {
                            return err(vcol, format!("{v}: invalid watch_port (below 65280, ANY or CONTROLLER)"));
                        }
                        Some(p as u32)
                    }
                };
            }
            "watch_group" => {
                let g = parse_uint(need()?, vcol, "a group id")?;
                if g > OFPG_MAX {
                    return err(vcol, format!("invalid watch_group id {g}"));
                }
                b.watch_group = Some(g as u32);
            }
            "bucket_id" => {
                let id = parse_uint(need()?, vcol, "a bucket id")?;
                if id > OFPG_MAX {
                    return err(vcol, format!("invalid bucket_id id {id}"));
                }
                b.bucket_id = Some(id as u32);
            }
            "action" | "actions" => acts.push(Token { text: val.unwrap_or(""), col: vcol }),
            _ => acts.push(t),
        }
    }
    if acts.is_empty() {
        return err(col, "bucket must specify actions");
    }
    if kind == GroupType::FastFailover && b.watch_port.is_none() && b.watch_group.is_none() {
        return err(col, "fast failover bucket requires watch_port or watch_group");
    }
    // Group buckets have no match to check ct against (OVS does not either).
    b.actions = parse_action_list(&acts, acts[0].col, Ctx::Bucket, &mut Vec::new())?;
    Ok(b)
}

/// Parses a group line (without a command word) starting at column
/// `col0`.
fn parse_group(s: &str, col0: usize, line_kind: GroupLineKind) -> Res<GroupCommand> {
    if line_kind == GroupLineKind::Delete && s.trim().is_empty() {
        return Ok(GroupCommand::Delete(None));
    }
    let (head, tail) = match s.find("bucket=") {
        Some(i) => (&s[..i], Some(i)),
        None => (s, None),
    };
    if let (Some(i), GroupLineKind::Delete) = (tail, line_kind) {
        return err(col0 + i, "bucket is not needed (deleting a group)");
    }
    let mut id: Option<u64> = None;
    let mut kind: Option<GroupType> = None;
    let mut method: Option<(String, usize)> = None;
    let mut param: Option<usize> = None;
    let mut fields: Vec<String> = Vec::new();
    let mut fields_col = 0;
    for t in words(head, col0) {
        let (key, val, vcol) = key_value(t.text, t.col)?;
        let need = || val.ok_or_else(|| (t.col, format!("`{key}` needs a value (`{key}=...`)")));
        if line_kind == GroupLineKind::Delete && key != "group_id" {
            return err(t.col, format!("{key} is not needed (deleting a group)"));
        }
        match key {
            "group_id" => {
                let v = need()?;
                let g = if v == "all" { u32::MAX as u64 } else { parse_uint(v, vcol, "a group id")? };
                if g > OFPG_MAX && (g != u32::MAX as u64 || line_kind != GroupLineKind::Delete) {
                    return err(vcol, format!("invalid group id {v} (0..4294967040; `all` only when deleting)"));
                }
                id = Some(g);
            }
            "type" => {
                kind = Some(match need()? {
                    "all" => GroupType::All,
                    "select" => GroupType::Select,
                    "indirect" => GroupType::Indirect,
                    "ff" | "fast_failover" => GroupType::FastFailover,
                    v => return err(vcol, format!("invalid group type `{v}` (all, select, indirect, ff)")),
                });
            }
            "selection_method" => {
                let v = need()?;
                if !matches!(v, "hash" | "dp_hash") {
                    return err(vcol, format!("selection_method `{v}` is not one of hash, dp_hash"));
                }
                method = Some((v.to_string(), vcol));
            }
            "selection_method_param" => {
                parse_uint(need()?, vcol, "a selection method parameter")?;
                param = Some(t.col);
            }
            "fields" => {
                fields = parse_fields(need()?, vcol)?;
                fields_col = t.col;
            }
            "command_bucket_id" => {
                return err(
                    t.col,
                    "command_bucket_id belongs to insert-buckets/remove-buckets, which sdnfwd does not take",
                )
            }
            _ => return err(t.col, format!("unknown keyword `{key}`")),
        }
    }
    let Some(id) = id else {
        return err(col0, "must specify a group_id");
    };
    if line_kind == GroupLineKind::Delete {
        return Ok(GroupCommand::Delete((id != u32::MAX as u64).then_some(id as u32)));
    }
    let Some(kind) = kind else {
        return err(col0, "must specify a type");
    };
    if !fields.is_empty() && method.as_ref().is_none_or(|(m, _)| m != "hash") {
        return err(fields_col, "fields may only be specified with selection_method=hash");
    }
    if let (Some(col), None) = (param, &method) {
        return err(col, "selection_method_param is only allowed with selection_method");
    }
    let mut buckets: Vec<Bucket> = Vec::new();
    if let Some(start) = tail {
        let body = &s[start..];
        let mut starts: Vec<usize> = body.match_indices("bucket=").map(|(i, _)| i).collect();
        starts.push(body.len());
        for w in starts.windows(2) {
            let from = w[0] + "bucket=".len();
            let b = parse_bucket(&body[from..w[1]], col0 + start + from, kind)?;
            if let Some(bid) = b.bucket_id {
                if buckets.iter().any(|o| o.bucket_id == Some(bid)) {
                    return err(col0 + start + w[0], format!("bucket_id {bid} is given twice"));
                }
            }
            buckets.push(b);
        }
    }
    if kind == GroupType::Indirect && buckets.len() > 1 {
        return err(col0, "indirect groups can have at most one bucket");
    }
    let spec = GroupSpec { group_id: id as u32, kind, selection_method: method.map(|(m, _)| m), fields, buckets };
    Ok(match line_kind {
        GroupLineKind::Modify => GroupCommand::Modify(spec),
        _ => GroupCommand::Add(spec),
    })
}

/// Parses a group as `ovs-ofctl add-group`, `mod-group` or `del-groups`
/// take it (`group_id=1,type=select,bucket=actions=output:1`; for a delete
/// `group_id=N`, or nothing for every group).
///
/// # Errors
/// A [`ParseError`] on line 1 with the column of the offending item.
/// `selection_method_param` is checked and then dropped (OVS drops it over
/// OpenFlow 1.3 too).
pub fn parse_group_line(line: &str, kind: GroupLineKind) -> Result<GroupCommand, ParseError> {
    parse_group(line, 1, kind).map_err(|(col, msg)| ParseError::new(1, col, msg))
}

/// Parses an `add-groups` file: one group per line, blank lines and `#`
/// comments skipped, `OFPST_GROUP_DESC reply` headers skipped (so that a
/// dump reads back).
///
/// # Errors
/// The first bad line, as `line:col: message` (the caller names the file).
pub fn parse_group_file(text: &str) -> Result<Vec<(usize, GroupCommand)>, ParseError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let t = raw.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with("OFPST_GROUP_DESC reply") {
            continue;
        }
        let col = raw.len() - t.len() + 1;
        let cmd = parse_group(t, col, GroupLineKind::Add).map_err(|(c, msg)| ParseError::new(n + 1, c, msg))?;
        out.push((n + 1, cmd));
    }
    Ok(out)
}
