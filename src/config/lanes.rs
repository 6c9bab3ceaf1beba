//! The settings that say how much runs at once (`GPUS`, and `PROVE_ORDER` for which block goes
//! first when several wait), and which cohort's rules the scoreboard keeps.

use clap::ValueEnum;

use super::ValueError;

/// `GPUS`: distinct CUDA device names, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuList(pub Vec<String>);

/// Parses `GPUS`: comma-separated device indices or UUIDs, each at most 64 characters of
/// letters, digits and `-`, no repeats (two runs on one GPU would fight for its memory), at most 64.
pub(super) fn gpu_list(s: &str) -> Result<GpuList, ValueError> {
    let gpus: Vec<String> = s.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
    if gpus.len() > 64 {
        return Err(ValueError::TooManyGpus(gpus.len()));
    }
    for (i, g) in gpus.iter().enumerate() {
        if g.len() > 64 || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ValueError::NotAGpu(g.clone()));
        }
        if gpus[..i].contains(g) {
            return Err(ValueError::GpuTwice(g.clone()));
        }
    }
    Ok(GpuList(gpus))
}

/// `PROVE_ORDER`: which waiting block goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ProveOrder {
    #[default]
    Oldest,
    Newest,
}

/// `COHORT` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CohortSetting {
    #[default]
    Auto,
    None,
    OneInTen,
    RealTime,
}

/// The EthProofs cohort whose rules the scoreboard keeps, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cohort {
    /// Every 10th block, each within 2 minutes, for at least 80 % of blocks.
    OneInTen,
    /// Every block, under 10 s for at least 70 %, at least 95 % proved at all.
    RealTime,
}

impl Cohort {
    /// Every how many blocks the cohort proves.
    pub fn every(self) -> u64 {
        match self {
            Cohort::OneInTen => 10,
            Cohort::RealTime => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cohort::OneInTen => "one-in-ten",
            Cohort::RealTime => "real-time",
        }
    }
}

/// `COHORT` against `BLOCK_INTERVAL`: `auto` follows the interval; a cohort named outright must
/// have its blocks among the targets.
pub(super) fn cohort(setting: CohortSetting, block_interval: u64) -> Result<Option<Cohort>, ValueError> {
    let named = match setting {
        CohortSetting::None => return Ok(None),
        CohortSetting::Auto => {
            return Ok(match block_interval {
                1 => Some(Cohort::RealTime),
                10 => Some(Cohort::OneInTen),
                _ => None,
            });
        }
        CohortSetting::OneInTen => Cohort::OneInTen,
        CohortSetting::RealTime => Cohort::RealTime,
    };
    if named.every() % block_interval != 0 {
        return Err(ValueError::CohortNotTargets {
            cohort: named.as_str(),
            every: named.every(),
            interval: block_interval,
        });
    }
    Ok(Some(named))
}

/// Parses `GPU_HOURLY_PRICE`: a finite, non-negative number below a million.
pub(super) fn price(s: &str) -> Result<f64, ValueError> {
    let p: f64 = s.trim().parse().map_err(|_| ValueError::NotANumber(s.to_string()))?;
    if !p.is_finite() || !(0.0..1_000_000.0).contains(&p) {
        return Err(ValueError::NotAPrice(s.to_string()));
    }
    Ok(p)
}
