//! corral patch: the pre-vote (`engine/pre_vote.rs`).

use std::sync::Arc;
use std::time::Duration;

use maplit::btreeset;
use pretty_assertions::assert_eq;

use crate::core::ServerState;
use crate::engine::testing::UTConfig;
use crate::engine::Command;
use crate::engine::Engine;
use crate::engine::LogIdList;
use crate::raft::VoteRequest;
use crate::raft::VoteResponse;
use crate::testing::log_id;
use crate::utime::UTime;
use crate::EffectiveMembership;
use crate::Membership;
use crate::TokioInstant;
use crate::Vote;

/// Node 1 of {1, 2, 3}, following leader 2 in term 2, last heard from it long enough ago
/// that its lease has expired; its last log entry is 2-2-5.
fn follower() -> Engine<UTConfig> {
    let mut eng = Engine::default();
    eng.state.enable_validation(false);
    eng.config.id = 1;
    eng.config.pre_vote = true;
    eng.state.vote = UTime::new(TokioInstant::now() - Duration::from_millis(400), Vote::new_committed(2, 2));
    eng.state.log_ids = LogIdList::new(vec![log_id(2, 2, 5)]);
    eng.state.server_state = ServerState::Follower;
    let m = Membership::<u64, ()>::new(vec![btreeset! {1,2,3}], None);
    eng.state.membership_state.set_effective(Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m)));
    eng.output.take_commands();
    eng
}

fn req(term: u64, node: u64, last: Option<(u64, u64, u64)>) -> VoteRequest<u64> {
    VoteRequest::new(Vote::new(term, node), last.map(|(t, n, i)| log_id(t, n, i)))
}

#[test]
fn test_pre_vote_req_granted_changes_nothing() -> anyhow::Result<()> {
    let eng = follower();
    let before = (*eng.state.vote_ref(), eng.state.vote_last_modified());

    let resp = eng.handle_pre_vote_req(req(3, 3, Some((2, 2, 5))));

    assert_eq!(VoteResponse::new(Vote::new(3, 3), Some(log_id(2, 2, 5)), true), resp);
    assert_eq!(before, (*eng.state.vote_ref(), eng.state.vote_last_modified()), "a pre-vote changes neither the vote nor its time");
    assert_eq!(0, eng.output.commands.len());
    Ok(())
}

#[test]
fn test_pre_vote_req_refused_within_the_lease() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.state.vote.touch(TokioInstant::now());

    let resp = eng.handle_pre_vote_req(req(3, 3, Some((2, 2, 5))));

    assert_eq!(
        VoteResponse::new(Vote::new_committed(2, 2), Some(log_id(2, 2, 5)), false),
        resp
    );
    Ok(())
}

#[test]
fn test_pre_vote_req_refused_by_log() -> anyhow::Result<()> {
    let eng = follower();
    let resp = eng.handle_pre_vote_req(req(3, 3, Some((2, 2, 4))));
    assert!(!resp.vote_granted);
    assert_eq!(Some(log_id(2, 2, 5)), resp.last_log_id);
    Ok(())
}

#[test]
fn test_pre_vote_req_refused_by_a_greater_vote() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.state.vote = UTime::new(TokioInstant::now() - Duration::from_millis(400), Vote::new(4, 2));

    let resp = eng.handle_pre_vote_req(req(3, 3, Some((2, 2, 5))));
    assert_eq!(VoteResponse::new(Vote::new(4, 2), Some(log_id(2, 2, 5)), false), resp);
    Ok(())
}

#[test]
fn test_pre_vote_req_lease_of_a_resigned_leader_does_not_hold() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.state.vote.touch(TokioInstant::now());
    // Leader 2 restarted without its last entry and campaigns: refused by log, and its lease
    // is over (patch 4).
    let resp = eng.handle_vote_req(req(3, 2, Some((2, 2, 4))));
    assert!(!resp.vote_granted);

    let resp = eng.handle_pre_vote_req(req(3, 3, Some((2, 2, 5))));
    assert!(resp.vote_granted);
    Ok(())
}

#[test]
fn test_pre_elect_asks_and_keeps_the_vote() -> anyhow::Result<()> {
    let mut eng = follower();
    let before = (*eng.state.vote_ref(), eng.state.vote_last_modified());

    eng.pre_elect();

    assert_eq!(before, (*eng.state.vote_ref(), eng.state.vote_last_modified()));
    assert_eq!(ServerState::Follower, eng.state.server_state);
    assert!(eng.candidate_ref().is_none());
    assert_eq!(
        vec![Command::SendPreVote {
            vote_req: req(3, 1, Some((2, 2, 5)))
        }],
        eng.output.take_commands()
    );
    assert!(eng.pre_vote_pending(Duration::from_secs(10)));
    assert!(!eng.pre_vote_pending(Duration::from_millis(0)));
    Ok(())
}

#[test]
fn test_pre_vote_quorum_campaigns() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.pre_elect();
    eng.output.take_commands();

    let granted = VoteResponse::new(Vote::new(3, 1), Some(log_id(2, 2, 5)), true);
    eng.handle_pre_vote_resp(2, granted, Vote::new(3, 1));

    assert_eq!(Vote::new(3, 1), *eng.state.vote_ref());
    assert_eq!(ServerState::Candidate, eng.state.server_state);
    assert!(eng.pre_vote.is_none());
    let commands = eng.output.take_commands();
    assert!(commands.contains(&Command::SaveVote { vote: Vote::new(3, 1) }), "{commands:?}");
    assert!(
        commands.contains(&Command::SendVote {
            vote_req: req(3, 1, Some((2, 2, 5)))
        }),
        "{commands:?}"
    );
    Ok(())
}

#[test]
fn test_pre_vote_refused_does_not_campaign() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.pre_elect();
    eng.output.take_commands();

    let refused = VoteResponse::new(Vote::new_committed(2, 2), Some(log_id(2, 2, 5)), false);
    eng.handle_pre_vote_resp(2, refused, Vote::new(3, 1));

    assert_eq!(Vote::new_committed(2, 2), *eng.state.vote_ref());
    assert_eq!(ServerState::Follower, eng.state.server_state);
    assert_eq!(0, eng.output.take_commands().len());
    assert!(!eng.is_there_greater_log());
    Ok(())
}

#[test]
fn test_pre_vote_refused_by_a_greater_log_delays_the_next() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.pre_elect();

    let refused = VoteResponse::new(Vote::new_committed(2, 2), Some(log_id(2, 2, 6)), false);
    eng.handle_pre_vote_resp(2, refused, Vote::new(3, 1));

    assert!(eng.is_there_greater_log());
    assert_eq!(Vote::new_committed(2, 2), *eng.state.vote_ref());
    Ok(())
}

#[test]
fn test_pre_vote_is_void_once_the_vote_changed() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.pre_elect();
    // A new leader is heard before the answers arrive.
    eng.state.vote.update(TokioInstant::now(), Vote::new_committed(3, 3));
    eng.output.take_commands();

    let granted = VoteResponse::new(Vote::new(3, 1), Some(log_id(2, 2, 5)), true);
    eng.handle_pre_vote_resp(2, granted, Vote::new(3, 1));

    assert_eq!(Vote::new_committed(3, 3), *eng.state.vote_ref());
    assert!(eng.pre_vote.is_none());
    assert_eq!(0, eng.output.take_commands().len());
    Ok(())
}

#[test]
fn test_pre_vote_answer_to_an_earlier_pre_vote_is_ignored() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.pre_elect();
    eng.output.take_commands();

    let granted = VoteResponse::new(Vote::new(2, 1), Some(log_id(2, 2, 5)), true);
    eng.handle_pre_vote_resp(2, granted, Vote::new(2, 1));

    assert_eq!(Vote::new_committed(2, 2), *eng.state.vote_ref());
    assert!(eng.pre_vote.is_some());
    assert_eq!(0, eng.output.take_commands().len());
    Ok(())
}

#[test]
fn test_pre_vote_refused_by_a_newer_term_takes_that_term() -> anyhow::Result<()> {
    let mut eng = follower();
    eng.pre_elect();

    let refused = VoteResponse::new(Vote::new(7, 3), Some(log_id(2, 2, 5)), false);
    eng.handle_pre_vote_resp(3, refused, Vote::new(3, 1));
    assert_eq!(Vote::new(7, 3), *eng.state.vote_ref());

    // Its next pre-vote is for the term after it.
    eng.output.take_commands();
    eng.pre_elect();
    assert_eq!(
        vec![Command::SendPreVote {
            vote_req: req(8, 1, Some((2, 2, 5)))
        }],
        eng.output.take_commands()
    );
    Ok(())
}

#[test]
fn test_pre_vote_of_a_lone_voter_campaigns_at_once() -> anyhow::Result<()> {
    let mut eng = follower();
    let m = Membership::<u64, ()>::new(vec![btreeset! {1}], None);
    eng.state.membership_state.set_effective(Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m)));

    eng.pre_elect();

    assert_eq!(Vote::new(3, 1), *eng.state.vote_ref());
    assert!(eng.pre_vote.is_none());
    Ok(())
}
