//! The settings that say how much runs at once: `GPUS`, and `PROVE_ORDER` for which block goes
//! first when several wait.

use clap::ValueEnum;

/// `GPUS`: distinct CUDA device names, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuList(pub Vec<String>);

/// Parses `GPUS`: comma-separated device indices or UUIDs, each at most 64 characters of
/// letters, digits and `-`, no repeats (two runs on one GPU would fight for its memory), at most 64.
pub(super) fn gpu_list(s: &str) -> Result<GpuList, String> {
    let gpus: Vec<String> = s.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
    if gpus.len() > 64 {
        return Err(format!("names {} GPUs; at most 64", gpus.len()));
    }
    for (i, g) in gpus.iter().enumerate() {
        if g.len() > 64 || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("`{g}` is not a GPU index or UUID (as CUDA_VISIBLE_DEVICES takes them, e.g. 0,1,2)"));
        }
        if gpus[..i].contains(g) {
            return Err(format!("names GPU {g} twice: one run per GPU"));
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
