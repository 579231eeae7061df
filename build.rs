//! Links berth as a position-dependent executable: every running container
//! has a supervisor process of this binary, and in a PIE each of them
//! relocates (and so privately copies) the binary's ~460 kB of read-only
//! data at start. Without PIE those pages are shared by all supervisors,
//! as the binary's code is. Libraries, heap and stacks stay randomised;
//! Docker's containerd-shim (Go) is not PIE either.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
