//! Why one setting's value is refused: the parsers' typed error (clap prints it after the
//! variable's name; `Config::from_args` wraps it in a `ConfigError` naming the variable).

/// A setting's value that cannot be taken, in the operator's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must be greater than 0")]
    Zero,
    #[error("{value:?} is not a whole number: {reason}")]
    NotAWholeNumber { value: String, reason: String },
    #[error("{0} s is more than 30 days")]
    MoreThan30Days(u64),
    #[error("{0:?} is not a duration like 90s, 30m, 24h or 7d")]
    NotADuration(String),
    #[error("{value:?}: unknown unit {unit:?} (use s, m, h or d)")]
    UnknownUnit { value: String, unit: String },
    #[error("{0:?} is longer than any clock counts")]
    DurationTooLong(String),
    #[error("is empty: use trace, debug, info, warn, error or off")]
    EmptyLogFilter,
    #[error("{directive:?} is not `target=level` with a level of {levels}")]
    NotTargetLevel { directive: String, levels: String },
    #[error("{directive:?} is not a level: use {levels} (or `target=level` directives)")]
    NotALevel { directive: String, levels: String },
    #[error("{host:?} is not an IP address nor a host name this machine resolves: {reason}")]
    UnknownHost { host: String, reason: String },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    #[error("names {0} GPUs; at most 64")]
    TooManyGpus(usize),
    #[error("`{0}` is not a GPU index or UUID (as CUDA_VISIBLE_DEVICES takes them, e.g. 0,1,2)")]
    NotAGpu(String),
    #[error("names GPU {0} twice: one run per GPU")]
    GpuTwice(String),
    #[error(
        "{cohort} proves every {every} block(s), but BLOCK_INTERVAL = {interval} makes only every {interval}th a target"
    )]
    CohortNotTargets { cohort: &'static str, every: u64, interval: u64 },
    #[error("`{0}` is not a number (e.g. 2.5)")]
    NotANumber(String),
    #[error("`{0}` is not a price per GPU-hour between 0 and 1000000")]
    NotAPrice(String),
}
