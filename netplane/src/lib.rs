//! berth-netplane: the network plane. So far: user-defined bridge networks
//! (`network create / ls / inspect / rm`): IPAM from Docker's default pools
//! around what the host already routes, a Linux bridge per network with its
//! gateway address (over netlink), and berth's own nftables table with
//! egress NAT, isolation between networks and `internal` networks.
//! Attaching containers (veth), published ports and DNS follow.
#![deny(missing_docs)]

pub mod attach;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod iptables;
pub mod link;
pub mod peers;
pub mod ports;
pub mod store;

pub use attach::Attachment;
pub use error::{Error, Result};
pub use ports::{PortRequest, PublishedPort};
pub use store::{NetworkRecord, NetworkRequest, Networks};
