//! berth's container networking (issue #10). What is here so far: [`ipam`], the address
//! manager — subnets chosen so they collide with no route of the host and no other network,
//! and addresses handed out within a network — as pure functions and plain data, so the
//! engine can keep the state in its database and the rules are tested without a kernel.

#![warn(missing_docs)]

pub mod ipam;
