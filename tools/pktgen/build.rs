//! Builds the generator's XDP program (bpf/pktgen.c: the live-frames
//! generator) with clang for the BPF target, as fastpath builds its own;
//! the object is embedded in the binary.

include!("../../fastpath/bpf/build_bpf.rs");

fn main() {
    println!("cargo:rerun-if-changed=../../fastpath/bpf/build_bpf.rs");
    build_bpf("pktgen");
}
