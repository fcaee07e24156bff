//! Builds the uplink's XDP program (bpf/uplink.c: the uplink filter) with
//! clang for the BPF target; the object is embedded in the binary.

include!("bpf/build_bpf.rs");

fn main() {
    println!("cargo:rerun-if-changed=bpf/build_bpf.rs");
    build_bpf("uplink");
}
