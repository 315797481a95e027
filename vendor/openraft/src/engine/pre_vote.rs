//! corral patch: the pre-vote (Raft thesis §9.6, etcd's PreVote).
//!
//! A node whose election timer fires first asks the voters whether they *would* grant it a
//! vote for the next term, and campaigns (raising its term) only when a quorum would. A voter
//! answers without changing anything, by the same rules as a real vote: the lease of a leader
//! it heard from recently, the log, the vote. So a node cut off by a partition stays in its
//! term however long it is away, and when the partition heals its newer term no longer makes
//! the leader step down. openraft 0.9 has no pre-vote; it is on when `Config::pre_vote` is.
//!
//! Elections a node starts for reasons other than its timer (startup, a trigger, a lone
//! voter) campaign at once, as before.

use crate::engine::Command;
use crate::engine::Engine;
use crate::proposer::Candidate;
use crate::proposer::LeaderQuorumSet;
use crate::raft::VoteRequest;
use crate::raft::VoteResponse;
use crate::raft_state::LogStateReader;
use crate::summary::MessageSummary;
use crate::type_config::alias::InstantOf;
use crate::type_config::TypeConfigExt;
use crate::progress::Progress;
use crate::RaftTypeConfig;
use crate::Vote;

/// A pre-vote this node has asked for and not yet won.
#[derive(Debug, Clone)]
pub(crate) struct PreVote<C: RaftTypeConfig> {
    /// This node's vote when it asked. Once it changes (a leader was heard, a vote granted),
    /// the answers are about a term that no longer follows it, and the pre-vote is void.
    pub(crate) base: Vote<C::NodeId>,

    /// When it asked: the next pre-vote waits an election timeout from here.
    pub(crate) started: InstantOf<C>,

    /// The vote it would campaign with, and who would grant it.
    pub(crate) candidate: Candidate<C, LeaderQuorumSet<C::NodeId>>,
}

impl<C> Engine<C>
where C: RaftTypeConfig
{
    /// Ask the voters whether they would elect this node; campaign if a quorum would.
    pub(crate) fn pre_elect(&mut self) {
        let effective = self.state.membership_state.effective();
        if !effective.is_voter(&self.config.id) {
            return;
        }
        let membership = effective.membership();
        let base = self.state.vote_ref().clone();
        let vote = Vote::new(base.leader_id().term + 1, self.config.id.clone());
        let last_log_id = self.state.last_log_id().cloned();
        let now = C::now();
        let mut candidate = Candidate::new(
            now,
            vote.clone(),
            last_log_id.clone(),
            membership.to_quorum_set(),
            membership.learner_ids(),
        );

        if candidate.grant_by(&self.config.id) {
            self.pre_vote = None;
            self.elect();
            return;
        }

        tracing::info!(vote = display(&vote), "pre-vote: asking the voters");
        self.pre_vote = Some(PreVote {
            base,
            started: now,
            candidate,
        });
        self.output.push_command(Command::SendPreVote {
            vote_req: VoteRequest::new(vote, last_log_id),
        });
    }

    /// Whether a pre-vote asked for less than `timeout` ago is still pending.
    pub(crate) fn pre_vote_pending(&self, timeout: std::time::Duration) -> bool {
        match &self.pre_vote {
            Some(pv) => &pv.base == self.state.vote_ref() && C::now() < pv.started + timeout,
            None => false,
        }
    }

    /// Would this node grant `req`? It answers as `handle_vote_req` would decide, and changes
    /// nothing: not its vote, not its timers.
    pub(crate) fn handle_pre_vote_req(&self, req: VoteRequest<C::NodeId>) -> VoteResponse<C::NodeId> {
        let vote = self.state.vote_ref();
        let last_log_id = self.state.last_log_id().cloned();
        let refuse = |why: &str| {
            tracing::info!(req = display(req.summary()), my_vote = display(vote), "refuse pre-vote: {}", why);
            VoteResponse::new(vote.clone(), last_log_id.clone(), false)
        };

        if self.leader.is_some() {
            return refuse("this node leads");
        }
        if self.leader_lease_applies() {
            let lease = self.config.timer_config.leader_lease;
            if let Some(utime) = self.state.vote_last_modified() {
                if C::now() <= utime + lease {
                    return refuse("the leader lease has not expired");
                }
            }
        }
        if req.last_log_id.as_ref() < self.state.last_log_id() {
            return refuse("this node has a greater log");
        }
        if !(&req.vote >= vote) {
            return refuse("this node has a greater vote");
        }

        tracing::info!(req = display(req.summary()), "grant pre-vote");
        VoteResponse::new(req.vote, last_log_id, true)
    }

    /// An answer to this node's pre-vote for `sender_vote`.
    pub(crate) fn handle_pre_vote_resp(
        &mut self,
        target: C::NodeId,
        resp: VoteResponse<C::NodeId>,
        sender_vote: Vote<C::NodeId>,
    ) {
        tracing::info!(
            resp = display(resp.summary()),
            target = display(&target),
            "pre-vote answer"
        );

        let Some(pv) = self.pre_vote.as_mut() else {
            return;
        };
        if pv.candidate.vote_ref() != &sender_vote {
            // An answer to an earlier pre-vote.
            return;
        }
        if &pv.base != self.state.vote_ref() || self.leader.is_some() {
            self.pre_vote = None;
            return;
        }

        if resp.vote_granted && &resp.vote == pv.candidate.vote_ref() {
            // Only a voter it asked; a changed membership makes a new pre-vote anyway.
            if pv.candidate.progress().try_get(&target).is_none() {
                return;
            }
            if pv.candidate.grant_by(&target) {
                tracing::info!("pre-vote: a quorum would elect this node; campaigning");
                self.pre_vote = None;
                self.reset_greater_log();
                self.elect();
            }
            return;
        }

        // Refused. A greater log elsewhere delays this node's next attempt, as in an election.
        if resp.last_log_id.as_ref() > self.state.last_log_id() {
            self.set_greater_log();
        }
        // A voter in a newer term: take that term (not its leader), as a refused vote does, so
        // that a node whose term fell behind can be elected at its next pre-vote.
        let mut higher = resp.vote;
        higher.committed = false;
        if &higher > self.state.vote_ref() {
            let _ = self.vote_handler().update_vote(&higher);
        }
    }
}
