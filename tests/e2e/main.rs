//! End-to-end tests of the `berth` binary, one module per command.
//!
//! Each test gets a fresh sandbox directory ([`sandbox::Dir`]) and runs the
//! real binary built by cargo, asserting what a user would see.

mod attacks;
mod compat;
mod compose;
mod config;
mod container;
mod examples;
mod image;
mod network;
mod registry;
mod sandbox;
