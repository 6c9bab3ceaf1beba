//! Which chain a block belongs to: the fork schedule ethrex executes it with.
//!
//! Every value of the config is serialized into the guest input, so two configs that execute a
//! block identically can still give different input bytes. The embedded configs are the ones
//! ethrex itself uses (mainnet as in ethrex's own inputs; Hoodi and Sepolia from ethrex's
//! network genesis files), kept as JSON under `config/chains/` so operators can read them.
//! Any other chain comes from a file: a geth-style genesis (its `config` is used) or a bare
//! config object.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ethrex_common::types::ChainConfig;
use serde::Deserialize;

/// The chain id of the offline dev chain (`run --dev`): nothing on it is ever on ethproofs.org.
pub const DEV_CHAIN_ID: u64 = 1337;

const MAINNET: &str = include_str!("../../config/chains/mainnet.json");
const HOODI: &str = include_str!("../../config/chains/hoodi.json");
const SEPOLIA: &str = include_str!("../../config/chains/sepolia.json");

/// The chains whose configs ship inside the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Mainnet,
    Hoodi,
    Sepolia,
}

impl Network {
    pub const ALL: [Network; 3] = [Network::Mainnet, Network::Hoodi, Network::Sepolia];

    pub fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Hoodi => "hoodi",
            Network::Sepolia => "sepolia",
        }
    }

    pub fn chain_id(self) -> u64 {
        match self {
            Network::Mainnet => 1,
            Network::Hoodi => 560048,
            Network::Sepolia => 11155111,
        }
    }

    fn json(self) -> &'static str {
        match self {
            Network::Mainnet => MAINNET,
            Network::Hoodi => HOODI,
            Network::Sepolia => SEPOLIA,
        }
    }

    pub fn from_chain_id(chain_id: u64) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.chain_id() == chain_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainSpecError {
    #[error(
        "chain id {chain_id} has no embedded config (embedded: mainnet 1, hoodi 560048, sepolia 11155111); name a genesis or config JSON file: CHAIN_CONFIG (--chain-config) for the daemon, --chain for generate-input"
    )]
    UnknownChainId { chain_id: u64 },
    #[error("cannot read chain config {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("chain config {origin} is malformed at `{path}`: {message}")]
    Malformed { origin: String, path: String, message: String },
    #[error("chain config {origin} is for chain id {config}, but the node reports chain id {node}")]
    ChainIdMismatch { origin: String, config: u64, node: u64 },
}

/// A chain config together with where it came from, for messages and `--version`-style output.
#[derive(Clone)]
pub struct ChainSpec {
    pub origin: String,
    pub config: ChainConfig,
}

impl fmt::Debug for ChainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainSpec").field("origin", &self.origin).field("chain_id", &self.config.chain_id).finish()
    }
}

impl ChainSpec {
    pub fn embedded(network: Network) -> ChainSpec {
        // The embedded JSON is part of the binary and covered by tests; failing here is a build bug.
        let config = parse_config(network.json(), network.name())
            .unwrap_or_else(|e| panic!("embedded {} config is invalid: {e}", network.name()));
        ChainSpec { origin: network.name().to_string(), config }
    }

    /// The one rule for which chain the daemon proves: the configured file (which must match the
    /// node's chain id), or else the embedded config for the node's chain id.
    pub fn select(config_file: Option<&Path>, node_chain_id: u64) -> Result<ChainSpec, ChainSpecError> {
        match config_file {
            Some(path) => {
                let spec = ChainSpec::from_file(path)?;
                spec.check_chain_id(node_chain_id)?;
                Ok(spec)
            }
            None => ChainSpec::by_chain_id(node_chain_id),
        }
    }

    pub fn by_chain_id(chain_id: u64) -> Result<ChainSpec, ChainSpecError> {
        Network::from_chain_id(chain_id).map(ChainSpec::embedded).ok_or(ChainSpecError::UnknownChainId { chain_id })
    }

    pub fn from_file(path: &Path) -> Result<ChainSpec, ChainSpecError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ChainSpecError::Io { path: path.to_path_buf(), source })?;
        let origin = path.display().to_string();
        let config = parse_config(&text, &origin)?;
        Ok(ChainSpec { origin, config })
    }

    pub fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// The chain by name, for people: `mainnet`, `hoodi`, `sepolia`, `dev chain` (the offline
    /// chain of `run --dev`), else `chain <id>` — never a file path.
    pub fn name(&self) -> String {
        if Network::from_chain_id(self.chain_id()).is_some_and(|n| n.name() == self.origin) {
            return self.origin.clone();
        }
        if self.is_dev() { "dev chain".to_string() } else { format!("chain {}", self.chain_id()) }
    }

    /// The offline dev chain: nothing on it is ever on ethproofs.org.
    pub fn is_dev(&self) -> bool {
        self.chain_id() == DEV_CHAIN_ID
    }

    /// Refuses to go on when the config is for a different chain than the node serves.
    pub fn check_chain_id(&self, node_chain_id: u64) -> Result<(), ChainSpecError> {
        if self.config.chain_id != node_chain_id {
            return Err(ChainSpecError::ChainIdMismatch {
                origin: self.origin.clone(),
                config: self.config.chain_id,
                node: node_chain_id,
            });
        }
        Ok(())
    }
}

/// How the user named a chain on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSelector {
    Network(Network),
    ChainId(u64),
    File(PathBuf),
}

impl FromStr for ChainSelector {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(network) = Network::ALL.into_iter().find(|n| n.name().eq_ignore_ascii_case(s)) {
            return Ok(ChainSelector::Network(network));
        }
        if let Ok(id) = s.parse::<u64>() {
            return Ok(ChainSelector::ChainId(id));
        }
        Ok(ChainSelector::File(PathBuf::from(s)))
    }
}

impl ChainSelector {
    pub fn resolve(&self) -> Result<ChainSpec, ChainSpecError> {
        match self {
            ChainSelector::Network(n) => Ok(ChainSpec::embedded(*n)),
            ChainSelector::ChainId(id) => ChainSpec::by_chain_id(*id),
            ChainSelector::File(path) => ChainSpec::from_file(path),
        }
    }
}

#[derive(Deserialize)]
struct GenesisShape<'a> {
    #[serde(borrow)]
    config: Option<&'a serde_json::value::RawValue>,
}

/// Parses a bare config object, or the `config` of a geth-style genesis.
pub fn parse_config(text: &str, origin: &str) -> Result<ChainConfig, ChainSpecError> {
    let malformed =
        |path: String, message: String| ChainSpecError::Malformed { origin: origin.to_string(), path, message };
    let shape: GenesisShape = serde_json::from_str(text).map_err(|e| malformed(".".into(), e.to_string()))?;
    let (body, prefix) = match shape.config {
        Some(config) => (config.get(), "config."),
        None => (text, ""),
    };
    let mut de = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize::<_, ChainConfig>(&mut de)
        .map_err(|e| malformed(format!("{prefix}{}", e.path()), e.inner().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_configs_parse_with_their_chain_ids() {
        for n in Network::ALL {
            assert_eq!(ChainSpec::embedded(n).chain_id(), n.chain_id(), "{}", n.name());
        }
    }

    #[test]
    fn mainnet_ttd_keeps_full_precision() {
        let spec = ChainSpec::embedded(Network::Mainnet);
        assert_eq!(spec.config.terminal_total_difficulty, Some(58_750_000_000_000_000_000_000));
    }

    #[test]
    fn selector_by_name_id_or_path() {
        assert_eq!("Hoodi".parse::<ChainSelector>().unwrap(), ChainSelector::Network(Network::Hoodi));
        assert_eq!("560048".parse::<ChainSelector>().unwrap(), ChainSelector::ChainId(560048));
        assert_eq!("./x.json".parse::<ChainSelector>().unwrap(), ChainSelector::File(PathBuf::from("./x.json")));
        assert_eq!(ChainSelector::ChainId(11155111).resolve().unwrap().origin, "sepolia");
    }

    #[test]
    fn unknown_chain_id_is_a_clear_error() {
        let err = ChainSpec::by_chain_id(17000).unwrap_err().to_string();
        assert!(err.contains("chain id 17000") && err.contains("no embedded config"), "{err}");
        // Each command's own way to name the file: `run` has no `--chain`.
        assert!(err.contains("CHAIN_CONFIG (--chain-config) for the daemon, --chain for generate-input"), "{err}");
    }

    #[test]
    fn genesis_and_bare_config_give_the_same_config() {
        let bare =
            r#"{"chainId":9,"londonBlock":0,"depositContractAddress":"0x0000000000000000000000000000000000000000"}"#;
        let genesis = format!(r#"{{"config":{bare},"alloc":{{}},"gasLimit":"0x1"}}"#);
        let a = parse_config(bare, "bare").unwrap();
        let b = parse_config(&genesis, "genesis").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.chain_id, 9);
    }

    #[test]
    fn malformed_config_names_the_field() {
        let err = parse_config(r#"{"config":{"chainId":"nine"}}"#, "g.json").unwrap_err().to_string();
        assert!(err.contains("g.json") && err.contains("config.chainId"), "{err}");
    }

    #[test]
    fn mismatched_chain_id_is_refused() {
        let err = ChainSpec::embedded(Network::Hoodi).check_chain_id(1).unwrap_err().to_string();
        assert!(err.contains("560048") && err.contains("chain id 1"), "{err}");
    }
}
