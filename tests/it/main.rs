//! The integration tests, in one binary (one link, one process: `cargo test` stays quick as
//! the suite grows). Each module tests one area against the real app, real HTTP servers and,
//! where it matters, the real binary.

mod common;

mod bridge;
mod config;
mod conformance;
mod contrib;
mod destinations;
mod digest;
mod docs;
mod durability;
mod enrich;
mod fuzz;
mod hostile;
mod logs;
mod oncall;
mod operations;
mod operator;
mod process;
mod rates;
mod replicas;
mod resilience;
mod secrets;
mod slack_bot;
mod terminal;
