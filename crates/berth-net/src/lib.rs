//! berth's container networking: [`ipam`], the address manager (subnets clear of the host's
//! routes and other networks, addresses within a network), and [`host`], the host's side
//! (bridges, a namespace and veths per container, published ports, berth's firewall table),
//! built on `berth-netlink` and `berth-nft`.

#![warn(missing_docs)]

pub mod host;
pub mod ipam;

pub use berth_netlink::mac_from_ipv4;
pub use berth_nft::{PortMap, Proto};
pub use host::{Attach, BridgeSpec, Error, Host, Sandbox, TABLE};
