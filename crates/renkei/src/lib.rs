//! The `renkei` binary's library: configuration, wiring and the command line.
//!
//! - [`config`]: the layered, typed configuration.
//! - [`cli`]: the command line (`serve`, `facility`, `node`, `import`, `stats`).
//! - [`server`]: opens the stores, binds the listeners and runs until shutdown.

pub mod cli;
pub mod config;
pub mod server;
