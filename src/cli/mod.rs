//! The binary's commands, one file each with its arguments (part of the binary, not the
//! library): `main.rs` parses the command line and dispatches here. What a command does that
//! needs the library's insides (doctor's checks, reproduce's replay) is in the library's
//! `commands`.
//!
//! - `run`: the daemon (and the log, and the stop signals).
//! - `generate_input`, `report`, `doctor`, `reproduce`, `settings`: one command each.
//! - `client`: `status`, `prove`, `resubmit`, `cancel`, `pause`, `resume` (a running daemon's API).
//! - `dev`: the offline dev chain (`run --dev`, `doctor --dev`, `devchain`).

mod client;
mod dev;
mod doctor;
mod generate_input;
mod report;
mod reproduce;
mod run;
mod settings;

pub(crate) use client::{ClientArgs, ProveArgs, ResubmitArgs, StatusArgs, client, prove, status};
pub(crate) use dev::{DevchainArgs, devchain_fixtures};
pub(crate) use doctor::{DoctorArgs, doctor};
pub(crate) use generate_input::{GenerateInputArgs, generate_input};
pub(crate) use report::{ReportArgs, report};
pub(crate) use reproduce::{ReproduceArgs, reproduce};
pub(crate) use run::run;
pub(crate) use settings::{SettingsArgs, settings};
