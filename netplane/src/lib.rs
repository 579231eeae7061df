//! berth-netplane: IPAM, bridges and veth pairs, firewall rules and the
//! embedded DNS server.
//!
//! Empty until the netplane issue lands: the crate exists so the workspace has
//! the shape `DESIGN.md` draws.
#![deny(missing_docs)]
