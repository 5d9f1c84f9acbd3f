//! One request's script calls and their answers: the whole batch in one
//! call on one server; on a Redis Cluster, one call per hash slot (a
//! script runs on one slot's keys), put back together all or nothing.

use super::backoff::Outage;
use super::slots::slot_of;
use crate::error::StoreError;
use crate::gcra::Cell;
use crate::store::{Batch, Reply};

/// One script call: `KEYS` `<prefix>:{<caller>}:<rule>` (the hash tag
/// puts one caller's counters in one slot), each counter's emission
/// interval and tolerance in microseconds, and where its counters sit in
/// the batch.
pub(super) struct Call {
    pub(super) keys: Vec<String>,
    rates: Vec<u64>,
    positions: Vec<usize>,
    /// A cluster's call: the hash slot of its keys.
    slot: Option<u16>,
}

impl Call {
    fn empty(slot: Option<u16>) -> Self {
        Call {
            keys: Vec::new(),
            rates: Vec::new(),
            positions: Vec::new(),
            slot,
        }
    }

    /// The counters of `range` of `batch`.
    fn push(&mut self, prefix: &str, batch: &Batch, range: std::ops::Range<usize>) {
        for (counter, position) in batch.counters()[range.clone()].iter().zip(range) {
            self.keys.push(format!(
                "{prefix}:{{{}}}:{}",
                counter.caller(),
                counter.rule()
            ));
            self.rates.extend([counter.interval(), counter.tolerance()]);
            self.positions.push(position);
        }
    }

    /// Every counter of `batch` in one call (one server takes any keys in
    /// one script).
    pub(super) fn whole(prefix: &str, batch: &Batch) -> Vec<Call> {
        let mut call = Call::empty(None);
        call.push(prefix, batch, 0..batch.counters().len());
        vec![call]
    }

    /// One call per hash slot of `batch`'s keys, in the order the slots
    /// first appear.
    pub(super) fn per_slot(prefix: &str, batch: &Batch) -> Vec<Call> {
        let mut calls: Vec<Call> = Vec::with_capacity(2);
        for range in batch.by_caller() {
            let mut group = Call::empty(None);
            group.push(prefix, batch, range);
            let slot = group.keys.first().map(|key| slot_of(key));
            match calls.iter_mut().find(|call| call.slot == slot) {
                Some(call) => {
                    call.keys.append(&mut group.keys);
                    call.rates.append(&mut group.rates);
                    call.positions.append(&mut group.positions);
                }
                None => calls.push(Call { slot, ..group }),
            }
        }
        if calls.is_empty() {
            calls.push(Call::empty(None));
        }
        calls
    }

    /// A cluster's call: the hash slot of its keys.
    pub(super) fn slot(&self) -> Option<u16> {
        self.slot
    }

    /// `<prefix>:{<caller>}` of the first key: a name in the call's slot.
    fn tag(&self) -> &str {
        let first = self.keys.first().map_or("", String::as_str);
        first.find('}').map_or(first, |end| &first[..=end])
    }

    /// `EVALSHA <hash>` or `EVAL <script>` of the GCRA script: the keys,
    /// `ARGV[1]` `""` (the server's clock) and the rates.
    pub(super) fn command(&self, verb: &str, script: &str) -> redis::Cmd {
        let mut command = redis::cmd(verb);
        command
            .arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg("")
            .arg(&self.rates);
        command
    }
}

/// Units to give back: the counters' keys and emission intervals of a
/// call that stored them, what it stored (each counter's timestamp,
/// on its node's clock), and a key of the call's slot that makes the
/// refund happen once. Owned: it is given back by a task of its own.
pub(super) struct Refund {
    keys: Vec<String>,
    intervals: Vec<u64>,
    stored: Vec<u64>,
    once: String,
}

impl Refund {
    /// `EVALSHA <hash>` or `EVAL <script>` of the refund script: the
    /// counters' keys and the refund's own key, then each counter's
    /// emission interval and stored timestamp.
    pub(super) fn command(&self, verb: &str, script: &str) -> redis::Cmd {
        let mut command = redis::cmd(verb);
        command
            .arg(script)
            .arg(self.keys.len() + 1)
            .arg(&self.keys)
            .arg(&self.once);
        for (interval, stored) in self.intervals.iter().zip(&self.stored) {
            command.arg(interval).arg(stored);
        }
        command
    }
}

/// One call's answer: whether it stored its counters (every one allowed),
/// the server's clock and a cell per counter.
#[derive(Debug)]
pub(super) struct Answer {
    stored: bool,
    now: u64,
    cells: Vec<Cell>,
}

/// The GCRA script's answer for `counters` counters: `{all_allowed, now,
/// then per counter: allowed, remaining, reset, retry}`.
pub(super) fn parse(reply: &[i64], counters: usize) -> Result<Answer, StoreError> {
    let unsigned = |v: i64| u64::try_from(v).map_err(|_| StoreError::Unexpected);
    let flag = |v: i64| match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(StoreError::Unexpected),
    };
    if reply.len() != 2 + 4 * counters {
        return Err(StoreError::Unexpected);
    }
    let stored = flag(reply[0])?;
    let now = unsigned(reply[1])?;
    let cells = reply[2..]
        .chunks_exact(4)
        .map(|c| {
            Ok(Cell::new(
                flag(c[0])?,
                unsigned(c[1])?,
                unsigned(c[2])?,
                unsigned(c[3])?,
            ))
        })
        .collect::<Result<Vec<Cell>, StoreError>>()?;
    // The script's summary must agree with its cells: anything else is not
    // our script's answer.
    if stored != cells.iter().all(Cell::allowed) {
        return Err(StoreError::Unexpected);
    }
    Ok(Answer { stored, now, cells })
}

/// What a request's calls come to: its answer, and the refunds of the
/// calls that stored their counters when another denied the request or
/// failed.
pub(super) type Combined = (Result<Reply, StoreError>, Vec<Refund>);

/// The calls that failed for an outage (not a refusal), to start the
/// backoff with, even when another call's denial is the answer: a
/// cluster's call by its slot, one server's as the whole store's.
pub(super) fn outages(calls: &[Call], answers: &[Result<Answer, StoreError>]) -> Vec<Outage> {
    calls
        .iter()
        .zip(answers)
        .filter(|(_, answer)| matches!(answer, Err(e) if !matches!(e, StoreError::Refused(_))))
        .map(|(call, _)| call.slot.map_or(Outage::Store, Outage::Slot))
        .collect()
}

/// The request's answer from its calls' (in the calls' order).
/// - One call (one server, or one slot): its answer as it is.
/// - A denial stands even when another call failed: what a slot denied is
///   never let through by the fallback. The failed calls' counters show
///   as unspent.
/// - Else a failure is the answer; of several, one that may pass (an
///   outage) is told before a refusal.
pub(super) fn combine(calls: &[Call], answers: Vec<Result<Answer, StoreError>>) -> Combined {
    if calls.len() == 1 {
        // A single call's positions are the batch's, in order.
        let reply = answers
            .into_iter()
            .next()
            .unwrap_or(Err(StoreError::Unexpected))
            .map(|answer| Reply::new(answer.now, answer.cells));
        return (reply, Vec::new());
    }
    let denied = answers.iter().any(|a| matches!(a, Ok(a) if !a.stored));
    let failure = answers
        .iter()
        .filter_map(|a| a.as_ref().err())
        .min_by_key(|e| matches!(e, StoreError::Refused(_)))
        .cloned();
    let mut refunds = Vec::new();
    if denied || failure.is_some() {
        let mut request = None;
        for (call, answer) in calls.iter().zip(&answers) {
            if let Ok(answer) = answer
                && answer.stored
            {
                let request = request.get_or_insert_with(|| uuid::Uuid::new_v4().simple());
                refunds.push(Refund {
                    keys: call.keys.clone(),
                    intervals: call.rates.iter().step_by(2).copied().collect(),
                    stored: answer
                        .cells
                        .iter()
                        .map(|cell| answer.now.saturating_add(cell.reset))
                        .collect(),
                    once: format!("{}:refund:{request}", call.tag()),
                });
            }
        }
    }
    if let (Some(error), false) = (&failure, denied) {
        return (Err(error.clone()), refunds);
    }
    let now = answers.iter().flatten().map(|a| a.now).max().unwrap_or(0);
    let counters = calls.iter().map(|call| call.positions.len()).sum();
    let mut cells = vec![Cell::new(false, 0, 0, 0); counters];
    for (call, answer) in calls.iter().zip(answers) {
        let call_cells = match answer {
            Ok(answer) => answer.cells,
            // Not counted there: as a fresh counter would answer.
            Err(_) => call
                .rates
                .chunks_exact(2)
                .map(|rate| fresh(rate[0], rate[1], now))
                .collect(),
        };
        for (&position, cell) in call.positions.iter().zip(call_cells) {
            if let Some(slot) = cells.get_mut(position) {
                *slot = cell;
            }
        }
    }
    let reply = Reply::new(now, cells);
    // A denial stands though another call failed: told, for the logs and
    // the timing.
    let reply = match failure {
        Some(error) => reply.with_failure(error),
        None => reply,
    };
    (Ok(reply), refunds)
}

/// A counter's answer at `now` when nothing is stored for it: allowed,
/// its burst less one left.
fn fresh(interval: u64, tolerance: u64, now: u64) -> Cell {
    let rate = crate::gcra::Rate {
        interval,
        burst: tolerance / interval.max(1),
    };
    rate.check(None, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_that_are_not_the_scripts_are_refused() {
        // One counter: summary, now, then allowed, remaining, reset, retry.
        assert!(parse(&[1, 10, 1, 4, 5, 0], 1).is_ok());
        assert!(parse(&[0, 10, 0, 0, 5, 3], 1).is_ok());
        for lie in [
            &[1, 10, 1, 4, 5][..],   // short
            &[1, 10, 1, 4, 5, 0, 0], // long
            &[1, 10, 2, 4, 5, 0],    // a flag that is neither 0 nor 1
            &[7, 10, 1, 4, 5, 0],    // a summary flag likewise
            &[1, 10, 0, 0, 5, 3],    // "all allowed" over a denial
            &[0, 10, 1, 4, 5, 0],    // "denied" over allowed cells
            &[1, -1, 1, 4, 5, 0],    // negative time
            &[1, 10, 1, -4, 5, 0],   // negative remaining
        ] {
            assert!(parse(lie, 1).is_err(), "{lie:?} accepted");
        }
    }

    #[test]
    fn a_cluster_call_per_hash_slot_a_server_call_for_all() {
        use redis::cluster_routing::Slot;

        use crate::gcra::Rate;
        use crate::key::CallerKey;
        use crate::store::Counter;
        let rate = Rate {
            interval: 10,
            burst: 2,
        };
        let caller = |n: u16| {
            let mut key = [0; 16];
            key[..2].copy_from_slice(&n.to_be_bytes());
            CallerKey(key)
        };
        let counter =
            |rule: usize, n: u16| Counter::new(rule, caller(n), format!("r{rule}").into(), rate);
        // Callers 1 and 2 are in different slots (checked), 1 has two rules.
        let slot = |n: u16| Slot::for_key(format!("p:{{{}}}:r", caller(n)));
        assert_ne!(slot(1), slot(2));
        let batch = Batch::new(vec![counter(0, 2), counter(1, 1), counter(2, 1)]);
        let calls = Call::per_slot("p", &batch);
        assert_eq!(calls.len(), 2);
        for call in &calls {
            let slots: Vec<Slot> = call.keys.iter().map(Slot::for_key).collect();
            assert!(slots.iter().all(|s| *s == slots[0]), "{:?}", call.keys);
            assert_eq!(call.slot().and_then(Slot::new), Some(slots[0]));
            for (key, &position) in call.keys.iter().zip(&call.positions) {
                let counter = &batch.counters()[position];
                assert_eq!(
                    *key,
                    format!("p:{{{}}}:{}", counter.caller(), counter.rule())
                );
            }
        }
        let mut positions: Vec<usize> = calls.iter().flat_map(|c| c.positions.clone()).collect();
        positions.sort_unstable();
        assert_eq!(positions, [0, 1, 2]);
        assert_eq!(calls[0].rates, [10, 20, 10, 20]);
        // A refund's own key shares the call's hash tag, so its slot.
        assert_eq!(calls[0].tag(), format!("p:{{{}}}", caller(1)));
        assert_eq!(
            Slot::for_key(format!("{}:refund:x", calls[1].tag())),
            slot(2)
        );
        // Two callers in one slot share a call.
        let same = (3..=u16::MAX).find(|&n| slot(n) == slot(1)).unwrap();
        let shared = Batch::new(vec![counter(0, 1), counter(1, same)]);
        assert_eq!(Call::per_slot("p", &shared).len(), 1);
        // One server: one call whatever the slots.
        let whole = Call::whole("p", &batch);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].positions, [0, 1, 2]);
        // Its failure is the whole store's.
        assert_eq!(
            outages(&whole, &[Err(StoreError::Timeout)]),
            [Outage::Store]
        );
        assert_eq!(
            outages(&calls, &[Err(StoreError::Timeout)])[0],
            Outage::Slot(calls[0].slot().unwrap())
        );
        assert_eq!(Call::per_slot("p", &Batch::new(Vec::new())).len(), 1);
    }

    fn call(positions: &[usize]) -> Call {
        Call {
            positions: positions.to_vec(),
            // 1 s apart, a burst of 5.
            rates: positions
                .iter()
                .flat_map(|_| [1_000_000, 5_000_000])
                .collect(),
            // Its slot: its first position.
            ..Call::empty(positions.first().and_then(|&p| u16::try_from(p).ok()))
        }
    }

    fn answer(reply: &[i64]) -> Result<Answer, StoreError> {
        parse(reply, (reply.len() - 2) / 4)
    }

    #[test]
    fn calls_put_back_together_all_or_nothing() {
        let calls = [call(&[0, 2]), call(&[1])];
        let allowed_two = || answer(&[1, 7, 1, 4, 5, 0, 1, 3, 5, 0]);
        // Both stored: the cells in the batch's order, the later clock.
        let (reply, refund) = combine(&calls, vec![allowed_two(), answer(&[1, 9, 1, 2, 5, 0])]);
        let reply = reply.unwrap();
        assert_eq!(reply.now, 9);
        let remaining: Vec<u64> = reply.cells.iter().map(|c| c.remaining).collect();
        assert_eq!(remaining, [4, 2, 3]);
        assert!(refund.is_empty());
        // The second denies: the first call's counters are given back, and
        // the answer shows the denial.
        let (reply, refund) = combine(&calls, vec![allowed_two(), answer(&[0, 9, 0, 0, 5, 3])]);
        assert!(!reply.unwrap().cells[1].allowed());
        assert_eq!(refund.len(), 1);
        // The first call's two counters.
        assert_eq!(refund[0].intervals, [1_000_000, 1_000_000]);
        // What the call stored: its clock plus each cell's reset.
        assert_eq!(refund[0].stored, [7 + 5, 7 + 5]);
        // The second fails: given back too, and the failure is the answer.
        let (reply, refund) = combine(&calls, vec![allowed_two(), Err(StoreError::Timeout)]);
        assert_eq!(reply.unwrap_err(), StoreError::Timeout);
        assert_eq!(refund.len(), 1);
        // One denies while the other fails: the denial stands (the
        // fallback never lets it through), the failed call's slot is still
        // told (it starts the backoff).
        let answers = vec![Err(StoreError::Timeout), answer(&[0, 9, 0, 0, 5, 3])];
        assert_eq!(outages(&calls, &answers), [Outage::Slot(0)]);
        let (reply, refund) = combine(&calls, answers);
        let reply = reply.unwrap();
        assert!(!reply.cells[1].allowed());
        assert!(reply.cells[0].allowed() && reply.cells[2].allowed());
        assert_eq!(reply.failed, Some(StoreError::Timeout), "told as a failure");
        assert!(refund.is_empty());
        // A failure that may pass is told before a refusal.
        let refused = || Err(StoreError::Refused("WRONGTYPE".into()));
        let answers = vec![refused(), Err(StoreError::Timeout)];
        // A refusal is no outage.
        assert_eq!(outages(&calls, &answers), [Outage::Slot(1)]);
        let (reply, refund) = combine(&calls, answers);
        assert_eq!(reply.unwrap_err(), StoreError::Timeout);
        assert!(refund.is_empty());
        let (reply, _) = combine(&calls, vec![refused(), allowed_two()]);
        assert!(matches!(reply, Err(StoreError::Refused(_))));
    }
}
