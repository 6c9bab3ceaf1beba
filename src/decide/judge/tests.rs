use super::*;

fn job(end: &JobEnd, proof_bytes: Option<u64>, cancelled_by: Option<CancelledBy>) -> Verdict {
    judge_job(&JobFacts {
        action: Action::Prove,
        end,
        proof_bytes,
        cancelled_by,
        elapsed: Duration::from_secs(90),
        timeout: Duration::from_secs(3600),
    })
}

#[test]
fn a_completed_job_is_a_proof_timed_by_the_job_itself() {
    let end = JobEnd::Proved { data: vec![1], proving_ms: Some(42_000), steps: Some(9) };
    assert_eq!(job(&end, Some(1), None), Verdict::Proved { proving_ms: 42_000, cycles: Some(9) });
    let untimed = JobEnd::Proved { data: vec![1], proving_ms: None, steps: None };
    assert_eq!(job(&untimed, Some(1), None), Verdict::Proved { proving_ms: 90_000, cycles: None });
    assert!(matches!(job(&end, Some(0), None), Verdict::Failed { stage: Stage::ProofOutput, .. }));
    assert!(matches!(job(&end, None, None), Verdict::Failed { stage: Stage::ProofOutput, .. }));
}

#[test]
fn every_failure_kind_lands_on_its_own_stage_with_its_reason() {
    let cases = [
        (
            Failure::Timeout { phase: Some("recurse"), limit_secs: Some(600) },
            "timeout",
            "of 600s ran out in the recurse phase",
        ),
        (Failure::Input("bad framing".into()), "input", "bad framing"),
        (Failure::Execution("guest panicked: state root mismatch".into()), "execution", "state root mismatch"),
        (Failure::Internal { trace_id: "tr-77".into() }, "coordinator", "trace id tr-77"),
        (Failure::Cancelled, "cancelled", "not by this daemon"),
        (Failure::NoResult, "coordinator_answer", "no result"),
    ];
    for (failure, stage, text) in cases {
        match job(&JobEnd::Failed(failure.clone()), None, None) {
            Verdict::Failed { stage: s, reason } => {
                assert_eq!(s.as_str(), stage, "{failure:?}");
                assert!(reason.contains(text), "{failure:?}: {reason}");
            }
            v => panic!("{failure:?} gave {v:?}"),
        }
    }
}

#[test]
fn a_job_this_daemon_cancelled_says_why() {
    let timeout = job(&JobEnd::Cancelled, None, Some(CancelledBy::Timeout));
    assert!(
        matches!(&timeout, Verdict::Failed { stage: Stage::Timeout, reason } if reason.contains("3600")),
        "{timeout:?}"
    );
    let operator = job(&JobEnd::Failed(Failure::Cancelled), None, Some(CancelledBy::Operator));
    assert_eq!(operator, Verdict::Failed { stage: Stage::Cancelled, reason: "cancelled by the operator".into() });
}

#[test]
fn an_execute_job_is_executed_never_proved() {
    let end = JobEnd::Done { steps: Some(5), ms: Some(700), outputs: Vec::new() };
    let facts = JobFacts {
        action: Action::Execute,
        end: &end,
        proof_bytes: None,
        cancelled_by: None,
        elapsed: Duration::from_secs(1),
        timeout: Duration::from_secs(60),
    };
    assert_eq!(judge_job(&facts), Verdict::Executed { ms: 700, cycles: Some(5) });
    assert!(matches!(job(&end, None, None), Verdict::Failed { stage: Stage::CoordinatorAnswer, .. }));
    assert_eq!(
        rejudge(Action::Prove, Ok(Exit::JobCompleted), true, Some(5), Some(1)),
        Verdict::Proved { proving_ms: 5, cycles: Some(1) }
    );
}

fn facts(ending: Ending, proof: Result<FoundProof, NoProof>) -> RunFacts {
    RunFacts {
        action: Action::Prove,
        ending,
        elapsed: Duration::from_millis(1500),
        proof,
        reported_ms: Some(1234),
        cycles: Some(7),
        detail: None,
    }
}

fn fresh(bytes: u64) -> Result<FoundProof, NoProof> {
    Ok(FoundProof { bytes, written_by_this_run: true })
}

#[test]
fn exit_zero_with_a_fresh_proof_is_proved_with_the_provers_own_time() {
    assert_eq!(judge(&facts(Ending::Code(0), fresh(10))), Verdict::Proved { proving_ms: 1234, cycles: Some(7) });
    let mut f = facts(Ending::Code(0), fresh(10));
    (f.reported_ms, f.cycles) = (Some(0), Some(0));
    assert_eq!(judge(&f), Verdict::Proved { proving_ms: 1500, cycles: None }, "zero is never reported");
    for absurd in [1501, 99_999_000, u64::MAX] {
        f.reported_ms = Some(absurd);
        let longer = judge(&f);
        assert_eq!(longer, Verdict::Proved { proving_ms: 1500, cycles: None }, "{absurd} ms claimed in a 1.5 s run");
    }
}

#[test]
fn a_stale_missing_or_empty_proof_fails() {
    let stale = Ok(FoundProof { bytes: 10, written_by_this_run: false });
    for proof in
        [stale, fresh(0), Err(NoProof::Unnamed(crate::block::zisk::ZiskError::MissingProof("no result.json".into())))]
    {
        match judge(&facts(Ending::Code(0), proof)) {
            Verdict::Failed { stage: Stage::ProofOutput, .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_exit_reads_back_from_its_record_and_nothing_else_does() {
    for exit in [
        Exit::JobCompleted,
        Exit::FoundAfterRestart,
        Exit::Process(Ending::Code(0)),
        Exit::Process(Ending::Code(3)),
        Exit::Process(Ending::Signal(9)),
        Exit::Process(Ending::TimedOut),
        Exit::Process(Ending::Cancelled),
    ] {
        assert_eq!(Exit::from_record(&exit.record()), Some(exit), "{exit:?}");
    }
    assert_eq!(Exit::from_record("code x"), None);
    assert_eq!(Exit::from_record(""), None);
}

#[test]
fn endings_name_their_stage() {
    for (ending, stage) in
        [(Ending::TimedOut, "timeout"), (Ending::Signal(9), "crash"), (Ending::Code(3), "prover_exit")]
    {
        match judge(&facts(ending, fresh(10))) {
            Verdict::Failed { stage: s, reason } => {
                assert_eq!(s.as_str(), stage);
                assert!(reason.contains("1.5s"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(judge(&facts(Ending::Cancelled, fresh(10))), Verdict::Stopped);
}

#[test]
fn a_recorded_exit_is_judged_again_without_running_anything() {
    assert_eq!(
        rejudge(Action::Prove, Ok(Exit::Process(Ending::Code(0))), true, Some(900), None),
        Verdict::Proved { proving_ms: 900, cycles: None }
    );
    assert!(matches!(
        rejudge(Action::Prove, Ok(Exit::Process(Ending::Code(0))), false, Some(900), None),
        Verdict::Failed { stage: Stage::ProofOutput, .. }
    ));
    assert!(matches!(
        rejudge(Action::Native, Ok(Exit::Process(Ending::Code(0))), false, None, None),
        Verdict::Executed { .. }
    ));
    assert!(matches!(
        rejudge(Action::Prove, Ok(Exit::Process(Ending::Signal(9))), true, None, None),
        Verdict::Failed { stage: Stage::ProverExit, .. }
    ));
    assert!(matches!(rejudge(Action::Prove, Err("garbage"), true, None, None), Verdict::Failed { .. }));
    for e in [Ending::Code(3), Ending::Signal(9), Ending::TimedOut, Ending::Cancelled] {
        assert_eq!(Ending::from_record(&e.record()), Some(e));
    }
}

#[test]
fn execution_is_never_a_proof() {
    let mut f = facts(Ending::Code(0), Err(NoProof::NotLookedFor));
    f.action = Action::Native;
    assert_eq!(judge(&f), Verdict::Executed { ms: 1500, cycles: Some(7) });
    f.action = Action::Execute;
    assert!(matches!(judge(&f), Verdict::Executed { .. }));
    f.ending = Ending::Code(1);
    f.action = Action::Native;
    assert!(matches!(judge(&f), Verdict::Failed { stage: Stage::NativeValidation, .. }));
}

#[test]
fn a_cancel_recorded_before_a_restart_ends_the_block_cancelled_never_requeues_it() {
    let verdict = rejudge(Action::Prove, Ok(Exit::Process(Ending::Cancelled)), false, None, None);
    assert_eq!(verdict, Verdict::Failed { stage: Stage::Cancelled, reason: "cancelled by the operator".into() });
}
