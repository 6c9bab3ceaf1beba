//! `settings`: every setting, as README's table or as the `.env` template (both rendered from
//! the one reference the daemon parses).

use clap::Args;
use ethproofs_daemon::config::reference;

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum SettingsFormat {
    Markdown,
    Env,
}

#[derive(Args)]
pub(crate) struct SettingsArgs {
    #[arg(long, value_enum, default_value = "markdown")]
    pub(crate) format: SettingsFormat,
}

pub(crate) fn settings(args: SettingsArgs) {
    print!(
        "{}",
        match args.format {
            SettingsFormat::Markdown => reference::markdown_table(),
            SettingsFormat::Env => reference::env_example(),
        }
    );
}
