//! Settings from the command line and the environment: parsing, typos, absurd values.

use super::*;

fn parse(args: &[&str]) -> Result<Config, String> {
    test_args(args)?.into_config().map_err(|e| e.to_string())
}

#[test]
fn paths_are_absolute_whatever_the_working_directory() {
    let c =
        test_args(&["--eth-rpc-url", "http://127.0.0.1:8545", "--output-dir", "out/x"]).unwrap().into_config().unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.output_dir, cwd.join("out/x"));
    assert_eq!(c.db_path, cwd.join("out/x/ethproofs-daemon.db"));
    assert!(c.elf_path.is_absolute());
}

#[test]
fn listen_hosts_take_a_name_as_well_as_an_ip() {
    let base = ["--eth-rpc-url", "http://127.0.0.1:8545"];
    let with = |flag: &str, v: &str| test_args(&[base[0], base[1], flag, v]);
    let local = with("--health-host", "localhost").unwrap().health_host;
    assert!(local.is_loopback(), "{local}");
    assert_eq!(with("--admin-host", "::1").unwrap().admin_host, "::1".parse::<std::net::IpAddr>().unwrap());
    let typo = with("--health-host", "no-such-host.invalid").err().unwrap();
    assert!(typo.contains("no-such-host.invalid") && typo.contains("host name"), "{typo}");
}

#[test]
fn absurd_timeouts_are_typos_not_overflows() {
    let base = ["--eth-rpc-url", "http://127.0.0.1:8545"];
    let with = |flag: &str, v: &str| test_args(&[base[0], base[1], flag, v]);
    assert!(with("--prover-timeout-seconds", "18446744073709551615").is_err_and(|e| e.contains("30 days")));
    assert!(with("--input-check-timeout-seconds", "99999999999").is_err());
    assert!(with("--prover-timeout-seconds", "2592000").is_ok());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
    assert_eq!(parse_duration("1w"), Err(ValueError::UnknownUnit { value: "1w".into(), unit: "w".into() }));
    assert_eq!(parse_duration("h"), Err(ValueError::NotADuration("h".into())));
    // A typo of many digits is refused, never wrapped round into a short window (or a panic).
    assert_eq!(parse_duration("213503982334602d"), Err(ValueError::DurationTooLong("213503982334602d".into())));
    assert_eq!(parse_duration("18446744073709551615"), Ok(Duration::from_secs(u64::MAX)));
}

#[test]
fn defaults_follow_the_reference() {
    let c = parse(&["--eth-rpc-url", "http://127.0.0.1:8545"]).unwrap();
    assert_eq!(c.block_interval, 100);
    assert_eq!(c.poll_interval, Duration::from_secs(2));
    assert_eq!(c.health_port, 4000);
    assert_eq!(c.prover_timeout, Duration::from_secs(7200));
    assert!(c.ethproofs.is_none());
}

#[test]
fn ethproofs_is_all_or_nothing() {
    let e = parse(&["--eth-rpc-url", "http://x", "--ethproofs-api-key", "k"]).unwrap_err();
    assert!(e.starts_with("ETHPROOFS_RPC_URL:") && e.contains("ETHPROOFS_CLUSTER_ID"), "{e}");
}

#[test]
fn secrets_never_show_in_debug() {
    let c = parse(&[
        "--eth-rpc-url",
        "https://node.example/v2/NODEKEY",
        "--ethproofs-rpc-url",
        "https://ethproofs.org/api/v0",
        "--ethproofs-api-key",
        "APIKEY123",
        "--ethproofs-cluster-id",
        "3",
        "--slack-webhook",
        "https://hooks.slack.com/services/T/B/HOOKSECRET",
    ])
    .unwrap();
    let debug = format!("{c:?}");
    for secret in ["NODEKEY", "APIKEY123", "HOOKSECRET"] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
}

#[test]
fn invalid_values_name_their_variable() {
    let e = parse(&["--eth-rpc-url", "http://x", "--block-interval", "0"]).unwrap_err();
    assert!(e.contains("BLOCK_INTERVAL") || e.contains("block-interval"), "{e}");
    let e = parse(&["--eth-rpc-url", "ftp://x/KEYINURL"]).unwrap_err();
    assert!(e.starts_with("ETH_RPC_URL") && !e.contains("KEYINURL"), "named, never echoed: {e}");
    let e = parse(&["--eth-rpc-url", "http://x", "--ethproofs-rpc-url", "not a url KEY2"]).unwrap_err();
    assert!(e.starts_with("ETHPROOFS_RPC_URL") && !e.contains("KEY2"), "{e}");
    let e = parse(&["--eth-rpc-url", "http://x", "--start-block", "150"]).unwrap_err();
    assert!(e.starts_with("START_BLOCK"), "{e}");
    let e = parse(&[]).unwrap_err();
    assert!(e.starts_with("ETH_RPC_URL"), "{e}");
}

#[test]
fn runs_at_once_are_gpus_on_the_cli_and_jobs_on_the_coordinator_never_mixed_up() {
    let rpc = ["--eth-rpc-url", "http://127.0.0.1:8545"];
    let with = |more: &[&str]| parse(&[rpc.as_slice(), more].concat());
    let lanes = |more: &[&str]| with(more).map(|c| c.lanes());
    assert_eq!(lanes(&[]).unwrap(), [None], "one run at a time by default");
    assert_eq!(
        lanes(&["--gpus", "0, 1,GPU-8f2e"]).unwrap(),
        [Some("0".into()), Some("1".into()), Some("GPU-8f2e".into())]
    );
    let coordinator = ["--prover-backend", "coordinator"];
    assert_eq!(lanes(&[coordinator.as_slice(), &["--max-jobs-in-flight", "3"]].concat()).unwrap(), [None, None, None]);
    assert_eq!(lanes(&["--zisk-action", "native", "--max-jobs-in-flight", "2"]).unwrap().len(), 2);
    // Each mistake is named.
    let refused = |more: &[&str]| with(more).err().unwrap_or_default();
    assert!(refused(&["--gpus", "0,1,0"]).contains("twice"), "one run per GPU");
    assert!(refused(&["--gpus", "0;rm -rf"]).contains("not a GPU index"));
    assert!(refused(&["--max-jobs-in-flight", "2"]).contains("GPUS"), "the CLI's runs are its GPUs");
    assert!(refused(&[coordinator.as_slice(), &["--gpus", "0,1"]].concat()).contains("MAX_JOBS_IN_FLIGHT"));
    assert!(refused(&["--max-jobs-in-flight", "0"]).contains("0"));
    assert!(!refused(&["--max-jobs-in-flight", "65"]).is_empty());
}

#[test]
fn the_cohort_follows_the_interval_and_a_named_one_must_fit_it() {
    let rpc = ["--eth-rpc-url", "http://127.0.0.1:8545"];
    let with = |more: &[&str]| parse(&[rpc.as_slice(), more].concat());
    let cohort = |more: &[&str]| with(more).map(|c| c.cohort);
    assert_eq!(cohort(&[]).unwrap(), None, "every 100th block is no cohort");
    assert_eq!(cohort(&["--block-interval", "1"]).unwrap(), Some(Cohort::RealTime));
    assert_eq!(cohort(&["--block-interval", "10"]).unwrap(), Some(Cohort::OneInTen));
    assert_eq!(cohort(&["--block-interval", "5", "--cohort", "one-in-ten"]).unwrap(), Some(Cohort::OneInTen));
    assert_eq!(cohort(&["--block-interval", "1", "--cohort", "none"]).unwrap(), None);
    let refused = with(&["--block-interval", "10", "--cohort", "real-time"]).err().unwrap();
    assert!(refused.starts_with("COHORT") && refused.contains("BLOCK_INTERVAL = 10"), "{refused}");
    // The cost per proof: the GPUs GPUS names unless the cluster says otherwise; a price is a price.
    assert_eq!(with(&["--gpus", "0,1,2"]).unwrap().cluster_gpus, 3);
    assert_eq!(with(&["--cluster-gpus", "16"]).unwrap().cluster_gpus, 16);
    assert_eq!(with(&["--gpu-hourly-price", "2.5"]).unwrap().gpu_hourly_price, Some(2.5));
    for bad in ["NaN", "-1", "inf", "two"] {
        assert!(with(&["--gpu-hourly-price", bad]).is_err(), "{bad}");
    }
}
