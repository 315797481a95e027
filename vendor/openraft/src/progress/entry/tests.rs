use std::borrow::Borrow;

use validit::Validate; // corral patch

use crate::progress::entry::ProgressEntry;
use crate::progress::inflight::Inflight;
use crate::raft_state::LogStateReader;
use crate::CommittedLeaderId;
use crate::LogId;

fn log_id(index: u64) -> LogId<u64> {
    LogId {
        leader_id: CommittedLeaderId::new(1, 1),
        index,
    }
}

fn inflight_logs(prev_index: u64, last_index: u64) -> Inflight<u64> {
    Inflight::logs(Some(log_id(prev_index)), Some(log_id(last_index)))
}

#[test]
fn test_is_log_range_inflight() -> anyhow::Result<()> {
    let mut pe = ProgressEntry::empty(20);
    assert_eq!(false, pe.is_log_range_inflight(&log_id(2)));

    pe.inflight = inflight_logs(2, 4);
    assert_eq!(false, pe.is_log_range_inflight(&log_id(1)));
    assert_eq!(false, pe.is_log_range_inflight(&log_id(2)));
    assert_eq!(true, pe.is_log_range_inflight(&log_id(3)));
    assert_eq!(true, pe.is_log_range_inflight(&log_id(4)));
    assert_eq!(true, pe.is_log_range_inflight(&log_id(5)));

    pe.inflight = Inflight::snapshot(Some(log_id(5)));
    assert_eq!(false, pe.is_log_range_inflight(&log_id(5)));

    Ok(())
}

#[test]
fn test_update_matching() -> anyhow::Result<()> {
    // Update matching and inflight
    {
        let mut pe = ProgressEntry::empty(20);
        pe.inflight = inflight_logs(5, 10);
        pe.update_matching(pe.inflight.id(), Some(log_id(6)))?;
        assert_eq!(inflight_logs(6, 10), pe.inflight);
        assert_eq!(Some(log_id(6)), pe.matching);
        assert_eq!(20, pe.searching_end);

        pe.update_matching(pe.inflight.id(), Some(log_id(10)))?;
        assert_eq!(Inflight::None, pe.inflight);
        assert_eq!(Some(log_id(10)), pe.matching);
        assert_eq!(20, pe.searching_end);
    }

    // `searching_end` should be updated
    {
        let mut pe = ProgressEntry::empty(20);
        pe.matching = Some(log_id(6));
        pe.inflight = inflight_logs(5, 20);

        pe.update_matching(pe.inflight.id(), Some(log_id(20)))?;
        assert_eq!(21, pe.searching_end);
    }

    Ok(())
}

#[test]
fn test_update_conflicting() -> anyhow::Result<()> {
    let mut pe = ProgressEntry::empty(20);
    pe.matching = Some(log_id(3));
    pe.inflight = inflight_logs(5, 10);
    pe.update_conflicting(Some(pe.inflight.id()), 5)?;
    assert_eq!(Inflight::None, pe.inflight);
    assert_eq!(&Some(log_id(3)), pe.borrow());
    assert_eq!(5, pe.searching_end);

    Ok(())
}

/// LogStateReader impl for testing
struct LogState {
    last: Option<LogId<u64>>,
    snap_last: Option<LogId<u64>>,
    purge_upto: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
}

impl LogState {
    fn new(purge_upto: u64, snap_last: u64, last: u64) -> Self {
        Self {
            last: Some(log_id(last)),
            snap_last: Some(log_id(snap_last)),
            // `next_send()` only checks purge_upto, but not purged,
            // We just fake a purged
            purge_upto: Some(log_id(purge_upto)),
            purged: Some(log_id(purge_upto - 1)),
        }
    }
}

impl LogStateReader<u64> for LogState {
    fn get_log_id(&self, index: u64) -> Option<LogId<u64>> {
        let x = Some(log_id(index));
        if x >= self.purged && x <= self.last {
            x
        } else {
            None
        }
    }

    fn last_log_id(&self) -> Option<&LogId<u64>> {
        self.last.as_ref()
    }

    fn committed(&self) -> Option<&LogId<u64>> {
        unimplemented!("testing")
    }

    fn io_applied(&self) -> Option<&LogId<u64>> {
        todo!()
    }

    fn io_snapshot_last_log_id(&self) -> Option<&LogId<u64>> {
        todo!()
    }

    fn io_purged(&self) -> Option<&LogId<u64>> {
        todo!()
    }

    fn snapshot_last_log_id(&self) -> Option<&LogId<u64>> {
        self.snap_last.as_ref()
    }

    fn purge_upto(&self) -> Option<&LogId<u64>> {
        self.purge_upto.as_ref()
    }

    fn last_purged_log_id(&self) -> Option<&LogId<u64>> {
        self.purged.as_ref()
    }
}

#[test]
fn test_next_send() -> anyhow::Result<()> {
    // There is already inflight data, return it in an Err
    {
        let mut pe = ProgressEntry::empty(20);
        pe.inflight = inflight_logs(10, 11);
        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Err(&inflight_logs(10, 11)), res);
    }

    {
        //    matching,end
        //    4,5
        //    v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(4);
        pe.matching = Some(log_id(4));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&Inflight::snapshot(Some(log_id(10))).with_id(1)), res);
    }
    {
        //    matching,end
        //    4 6
        //    v-v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(6);
        pe.matching = Some(log_id(4));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&Inflight::snapshot(Some(log_id(10))).with_id(1)), res);
    }

    {
        //    matching,end
        //    4  7
        //    v--v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(7);
        pe.matching = Some(log_id(4));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(6, 20).with_id(1)), res);
    }

    {
        //    matching,end
        //    4              20
        //    v--------------v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(20);
        pe.matching = Some(log_id(4));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(6, 20).with_id(1)), res);
    }

    //-----------

    {
        //      matching,end
        //      6,7
        //      v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(7);
        pe.matching = Some(log_id(6));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(6, 20).with_id(1)), res);
    }

    {
        //      matching,end
        //      6, 8
        //      v--v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(8);
        pe.matching = Some(log_id(6));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(6, 20).with_id(1)), res);
    }

    {
        //      matching,end
        //      6,           20
        //      v------------v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(20);
        pe.matching = Some(log_id(6));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(6, 20).with_id(1)), res);
    }

    {
        //       matching,end
        //       7,          20
        //       v-----------v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(20);
        pe.matching = Some(log_id(7));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(7, 20).with_id(1)), res);
    }

    {
        //          matching,end
        //          7,8
        //          v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(8);
        pe.matching = Some(log_id(7));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Ok(&inflight_logs(7, 20).with_id(1)), res);
    }

    {
        //                   matching,end
        //                   20,21
        //                   v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(21);
        pe.matching = Some(log_id(20));

        let res = pe.next_send(&LogState::new(6, 10, 20), 100);
        assert_eq!(Err(&Inflight::None), res, "nothing to send");
    }

    {
        // The leader log is fully purged and the follower's progress was just reset, so the
        // matching point is still unknown but no entry survives for a probe to carry.
        // Without a snapshot here `next_send()` returns `Inflight::None` on every call and the
        // follower can never converge.
        //
        // matching        end
        // None            21
        //                 v
        // ----------------+--->
        //                 purged,snap,last
        //                 20

        let mut pe = ProgressEntry::empty(21);

        let res = pe.next_send(&LogState::new(20, 20, 20), 100);
        assert_eq!(
            Ok(&Inflight::snapshot(Some(log_id(20))).with_id(1)),
            res,
            "fully purged leader log: replicate by snapshot"
        );
    }

    // Test max_entries
    {
        //       matching,end
        //       7,          20
        //       v-----------v
        // -----+------+-----+--->
        //      purged snap  last
        //      6      10    20

        let mut pe = ProgressEntry::empty(20);
        pe.matching = Some(log_id(7));

        let res = pe.next_send(&LogState::new(6, 10, 20), 5);
        assert_eq!(Ok(&inflight_logs(7, 12).with_id(1)), res);
    }
    Ok(())
}

// corral patch (pipelined replication): a second request at line rate, and the answers that
// may come for it.

/// A follower at line rate: `matching` 7.
fn at_line_rate() -> ProgressEntry<u64> {
    let mut pe = ProgressEntry::empty(8);
    pe.matching = Some(log_id(7));
    pe
}

#[test]
fn test_pipelined_only_at_line_rate_and_one_at_a_time() -> anyhow::Result<()> {
    let mut pe = at_line_rate();
    assert_eq!(Ok(&inflight_logs(7, 10).with_id(1)), pe.next_send(&LogState::new(6, 6, 10), 100));
    // Nothing new: nothing to pipeline.
    assert_eq!(Err(&inflight_logs(7, 10).with_id(1)), pe.next_send(&LogState::new(6, 6, 10), 100));
    // New entries go at once, bounded by max_entries, after what is in flight.
    assert_eq!(Ok(&inflight_logs(10, 13).with_id(2)), pe.next_send(&LogState::new(6, 6, 15), 3));
    // Two in flight: the rest waits.
    assert_eq!(Err(&inflight_logs(7, 10).with_id(1)), pe.next_send(&LogState::new(6, 6, 15), 3));
    pe.validate().map_err(|e| anyhow::anyhow!("{e}"))?;

    // A probe of a binary search (its start is not known to match) is never pipelined.
    let mut probing = ProgressEntry::empty(20);
    probing.inflight = inflight_logs(10, 11).with_id(1);
    probing.curr_inflight_id = 1;
    assert_eq!(Err(&inflight_logs(10, 11).with_id(1)), probing.next_send(&LogState::new(6, 6, 30), 100));
    Ok(())
}

#[test]
fn test_pipelined_answers_in_order() -> anyhow::Result<()> {
    let mut pe = at_line_rate();
    pe.next_send(&LogState::new(6, 6, 10), 100).unwrap();
    pe.next_send(&LogState::new(6, 6, 12), 100).unwrap();

    pe.update_matching(1, Some(log_id(10)))?;
    assert_eq!(Some(log_id(10)), pe.matching);
    assert_eq!(inflight_logs(10, 12).with_id(2), pe.inflight, "the pipelined request is next");
    assert_eq!(Inflight::None, pe.pipelined);

    pe.update_matching(2, Some(log_id(12)))?;
    assert_eq!(Some(log_id(12)), pe.matching);
    assert_eq!(Inflight::None, pe.inflight);
    assert_eq!(13, pe.searching_end);
    Ok(())
}

#[test]
fn test_pipelined_refused_before_the_first_is_answered() -> anyhow::Result<()> {
    // It reached the follower first: forget it, keep the first, resend after it.
    let mut pe = at_line_rate();
    pe.next_send(&LogState::new(6, 6, 10), 100).unwrap();
    pe.next_send(&LogState::new(6, 6, 12), 100).unwrap();
    pe.update_conflicting(Some(2), 10)?;
    assert_eq!(inflight_logs(7, 10).with_id(1), pe.inflight);
    assert_eq!(Inflight::None, pe.pipelined);
    assert_eq!(8, pe.searching_end, "a refusal of a pipelined request says nothing of the log");

    pe.update_matching(1, Some(log_id(10)))?;
    assert_eq!(Ok(&inflight_logs(10, 12).with_id(3)), pe.next_send(&LogState::new(6, 6, 12), 100));
    Ok(())
}

#[test]
fn test_pipelined_refused_after_the_first_was_accepted_is_stale() -> anyhow::Result<()> {
    // Answered in order, but the follower handled them in the other order: the second's
    // conflict is below `matching`. Not a lost log: send again from `matching`.
    let mut pe = at_line_rate();
    pe.next_send(&LogState::new(6, 6, 10), 100).unwrap();
    pe.next_send(&LogState::new(6, 6, 12), 100).unwrap();
    pe.update_matching(1, Some(log_id(10)))?;
    pe.update_conflicting(Some(2), 10)?;
    assert_eq!(Inflight::None, pe.inflight);
    assert_eq!(Some(log_id(10)), pe.matching);
    assert_eq!(11, pe.searching_end);
    assert_eq!(Ok(&inflight_logs(10, 12).with_id(3)), pe.next_send(&LogState::new(6, 6, 12), 100));
    Ok(())
}

#[test]
fn test_pipelined_accepted_before_the_first_is_answered() -> anyhow::Result<()> {
    // The follower accepted the second: it holds the first too. The first's answer is stale.
    let mut pe = at_line_rate();
    pe.next_send(&LogState::new(6, 6, 10), 100).unwrap();
    pe.next_send(&LogState::new(6, 6, 12), 100).unwrap();
    pe.update_matching(2, Some(log_id(12)))?;
    assert_eq!(Some(log_id(12)), pe.matching);
    assert_eq!(Inflight::None, pe.inflight);
    assert_eq!(Inflight::None, pe.pipelined);

    pe.update_matching(1, Some(log_id(10)))?;
    pe.update_conflicting(Some(1), 7)?;
    assert_eq!(Some(log_id(12)), pe.matching, "stale answers change nothing");
    assert_eq!(13, pe.searching_end);
    Ok(())
}

#[test]
fn test_cleared_requests_answers_are_stale_and_unknown_ids_are_errors() -> anyhow::Result<()> {
    // What an RPC error on the first request does (`ReplicationHandler::update_progress`).
    let mut pe = at_line_rate();
    pe.next_send(&LogState::new(6, 6, 10), 100).unwrap();
    pe.next_send(&LogState::new(6, 6, 12), 100).unwrap();
    pe.clear_inflight();
    pe.update_matching(2, Some(log_id(12)))?;
    pe.update_conflicting(Some(1), 7)?;
    assert_eq!(Inflight::None, pe.inflight, "the cleared requests' answers are stale");
    assert_eq!(Some(log_id(7)), pe.matching);
    assert_eq!(8, pe.searching_end);

    assert!(pe.update_matching(99, Some(log_id(12))).is_err(), "an id never sent is a bug");
    Ok(())
}
