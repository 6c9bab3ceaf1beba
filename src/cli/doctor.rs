//! `doctor`: every check of the settings and of the world they point at, one line each; the
//! checks themselves are the library's (`commands::doctor`).

use std::process::ExitCode;

use clap::Args;
use ethproofs_daemon::config::RunArgs;

use super::dev::serve_dev_chain;

#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Also send a test message to SLACK_WEBHOOK.
    #[arg(long)]
    pub(crate) notify: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

pub(crate) fn doctor(mut args: DoctorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `doctor --dev` checks what `run --dev` would run: a dev chain of its own, native mode.
    if args.run.dev {
        match runtime.block_on(serve_dev_chain(&mut args.run, false)) {
            Ok(url) => {
                eprintln!(
                    "dev chain (chain id {}) serving JSON-RPC at {url}",
                    ethproofs_daemon::outside::devchain::CHAIN_ID
                )
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = match args.run.into_config() {
        Ok(c) => c,
        Err(e) => {
            for check in ethproofs_daemon::commands::doctor::without_config(&e.to_string()) {
                println!("{}", check.line());
            }
            println!("1 check(s) failed");
            return ExitCode::from(2);
        }
    };
    let checks = runtime.block_on(ethproofs_daemon::commands::doctor::run(&config, args.notify));
    for check in &checks {
        println!("{}", check.line());
    }
    let failed = checks.iter().filter(|c| c.ok == Some(false)).count();
    if failed > 0 {
        println!("{failed} check(s) failed");
        ExitCode::FAILURE
    } else {
        println!("all checks passed");
        ExitCode::SUCCESS
    }
}
