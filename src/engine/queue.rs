//! The pending-event set: a priority queue ordered by (time, insertion order).
//!
//! Equal-time events pop first-in first-out, so a run never depends on heap internals.
//! Invariants, asserted in release builds too because they are one comparison each:
//! popped times never decrease, and nothing is scheduled before the current time.
//!
//! The store is a radix heap keyed by time alone: `benches/engine.rs` measured it against
//! `std::collections::BinaryHeap`, a 4-ary heap (`dary_heap`) and the `radix-heap` crate
//! in the hold model (figures in docs/performance.md). A radix heap needs monotone keys,
//! which a discrete-event simulation has (nothing is scheduled in the past).

use super::time::{Dur, Time};
use std::collections::VecDeque;

/// Counters of what the queue did, reported by every run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub scheduled: u64,
    pub processed: u64,
    pub peak_pending: u64,
}

/// A radix heap over `u64` keys that pops equal keys in insertion order.
///
/// Bucket 0 holds keys equal to `last` (the last key popped); bucket `b` >= 1 holds keys
/// whose highest bit differing from `last` is bit `b - 1`. Keys equal to each other always
/// share a bucket (raising `last` to the minimum of bucket `b` keeps every bit above
/// `b - 1`), buckets are appended to and redistributed in order, and bucket 0 is a FIFO:
/// so equal keys leave in the order they came. No sequence number is stored.
#[derive(Clone)]
struct RadixQueue<E> {
    last: u64,
    zero: VecDeque<E>,
    buckets: Vec<Vec<(u64, E)>>,
    /// Bit `b - 1` set when bucket `b` is non-empty.
    occupied: u64,
    len: usize,
}

impl<E> RadixQueue<E> {
    fn new() -> Self {
        RadixQueue {
            last: 0,
            zero: VecDeque::new(),
            buckets: (0..=64).map(|_| Vec::new()).collect(),
            occupied: 0,
            len: 0,
        }
    }

    #[inline]
    fn bucket(&self, key: u64) -> usize {
        64 - (key ^ self.last).leading_zeros() as usize
    }

    #[inline]
    fn push(&mut self, key: u64, e: E) {
        debug_assert!(key >= self.last);
        self.len += 1;
        if key == self.last {
            self.zero.push_back(e);
        } else {
            let b = self.bucket(key);
            self.buckets[b].push((key, e));
            self.occupied |= 1 << (b - 1);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<(u64, E)> {
        if self.zero.is_empty() {
            let (b, min) = self.lowest_bucket()?;
            self.advance_to(b, min);
        }
        let e = self.zero.pop_front()?;
        self.len -= 1;
        Some((self.last, e))
    }

    /// The lowest occupied bucket above 0 and its smallest key, if any is occupied.
    fn lowest_bucket(&self) -> Option<(usize, u64)> {
        if self.occupied == 0 {
            return None;
        }
        let b = self.occupied.trailing_zeros() as usize + 1;
        let min = self.buckets[b]
            .iter()
            .map(|(k, _)| *k)
            .min()
            .expect("occupied bucket");
        Some((b, min))
    }

    /// Moves every entry of the lowest occupied bucket `b`, whose smallest key is `min`,
    /// into bucket 0 (key `min`) or a lower bucket, with `last` raised to `min`.
    fn advance_to(&mut self, b: usize, min: u64) {
        let mut items = std::mem::take(&mut self.buckets[b]);
        self.occupied &= !(1 << (b - 1));
        self.last = min;
        for (k, e) in items.drain(..) {
            if k == self.last {
                self.zero.push_back(e);
            } else {
                let nb = self.bucket(k);
                debug_assert!(nb < b);
                self.buckets[nb].push((k, e));
                self.occupied |= 1 << (nb - 1);
            }
        }
        // Keep the allocation for the next time this bucket fills.
        self.buckets[b] = items;
    }

    /// Removes every entry with the smallest key into `out` (in insertion order) and
    /// returns that key, unless the queue is empty or the smallest key is `limit` or more
    /// (then nothing changes: keys below `limit` may still be pushed).
    fn pop_ties(&mut self, limit: u64, out: &mut Vec<E>) -> Option<u64> {
        if self.zero.is_empty() {
            let (b, min) = self.lowest_bucket()?;
            if min >= limit {
                return None;
            }
            self.advance_to(b, min);
        } else if self.last >= limit {
            return None;
        }
        self.len -= self.zero.len();
        if out.is_empty() {
            // Hand bucket 0 over whole and take `out`'s allocation in its place: both
            // conversions are free while bucket 0 is only ever pushed to (never popped from
            // the front), which holds when a queue is only emptied through this.
            let spare = VecDeque::from(std::mem::take(out));
            *out = Vec::from(std::mem::replace(&mut self.zero, spare));
        } else {
            out.extend(self.zero.drain(..));
        }
        Some(self.last)
    }

    fn peek_key(&self) -> Option<u64> {
        if !self.zero.is_empty() {
            return Some(self.last);
        }
        self.lowest_bucket().map(|(_, min)| min)
    }
}

/// A discrete-event queue over a closed event type `E` chosen by the model that owns it.
#[derive(Clone)]
pub struct EventQueue<E> {
    heap: RadixQueue<E>,
    now: Time,
    stats: QueueStats,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        EventQueue {
            heap: RadixQueue::new(),
            now: Time::ZERO,
            stats: QueueStats::default(),
        }
    }

    /// Kept for callers that know their size; the radix store grows per bucket.
    pub fn with_capacity(_n: usize) -> Self {
        Self::new()
    }

    /// The time of the event most recently popped (zero before the first).
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn len(&self) -> usize {
        self.heap.len
    }

    pub fn is_empty(&self) -> bool {
        self.heap.len == 0
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Schedules `event` at absolute time `at`. Panics if `at` is before `now`: a model that
    /// does so has a bug, and running on would produce a wrong answer silently.
    #[inline]
    pub fn schedule_at(&mut self, at: Time, event: E) {
        assert!(
            at >= self.now,
            "event scheduled in the past: at {at:?}, now {:?}",
            self.now
        );
        self.heap.push(at.as_ps(), event);
        self.stats.scheduled += 1;
        let pending = self.heap.len as u64;
        if pending > self.stats.peak_pending {
            self.stats.peak_pending = pending;
        }
    }

    /// Schedules `event` `delay` after now.
    #[inline]
    pub fn schedule_in(&mut self, delay: Dur, event: E) {
        self.schedule_at(self.now + delay, event);
    }

    /// Removes the earliest event and advances `now` to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let (t, event) = self.heap.pop()?;
        let time = Time::from_ps(t);
        assert!(time >= self.now, "time went backwards");
        self.now = time;
        self.stats.processed += 1;
        Some((time, event))
    }

    /// Removes every event at the earliest pending time into `out` (in insertion order) and
    /// advances `now` to that time, unless that time is `limit` or later. Returns the time.
    /// Events scheduled at `now` while the caller handles `out` form the next call's set.
    #[inline]
    pub fn pop_ties(&mut self, limit: Time, out: &mut Vec<E>) -> Option<Time> {
        let before = out.len();
        let t = self.heap.pop_ties(limit.as_ps(), out)?;
        let time = Time::from_ps(t);
        assert!(time >= self.now, "time went backwards");
        self.now = time;
        self.stats.processed += (out.len() - before) as u64;
        Some(time)
    }

    /// The time of the earliest pending event, without removing it.
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek_key().map(Time::from_ps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_time_events_pop_in_insertion_order() {
        let mut q = EventQueue::new();
        let t = Time::from_ps(10);
        for i in 0..100u32 {
            q.schedule_at(t, i);
        }
        q.schedule_at(Time::from_ps(5), 1000);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        let mut expected = vec![1000];
        expected.extend(0..100);
        assert_eq!(order, expected);
    }

    #[test]
    #[should_panic(expected = "event scheduled in the past")]
    fn scheduling_in_the_past_panics() {
        let mut q = EventQueue::new();
        q.schedule_at(Time::from_ps(10), ());
        q.pop();
        q.schedule_at(Time::from_ps(9), ());
    }

    #[test]
    fn stats_count_events() {
        let mut q = EventQueue::new();
        q.schedule_in(Dur::from_ns(1), 'a');
        q.schedule_in(Dur::from_ns(2), 'b');
        q.pop();
        let s = q.stats();
        assert_eq!((s.scheduled, s.processed, s.peak_pending), (2, 1, 2));
    }

    /// The reference the radix store must match: a binary heap on (time, sequence).
    fn reference_order(ops: &[(bool, u64)]) -> Vec<(u64, u32)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let (mut heap, mut out, mut now, mut seq) = (BinaryHeap::new(), Vec::new(), 0u64, 0u32);
        for &(is_pop, d) in ops {
            if is_pop {
                if let Some(Reverse((t, s))) = heap.pop() {
                    now = t;
                    out.push((t, s));
                }
            } else {
                heap.push(Reverse((now + d, seq)));
                seq += 1;
            }
        }
        while let Some(Reverse(x)) = heap.pop() {
            out.push(x);
        }
        out
    }

    /// `pop_ties` hands over all events of the earliest time in insertion order, never one
    /// at or past its limit (nor changes anything then: an earlier event may still come),
    /// and events scheduled at that time meanwhile form the next set.
    #[test]
    fn pop_ties_takes_a_whole_time_in_insertion_order() {
        let mut q = EventQueue::new();
        for (t, e) in [(20, 'a'), (10, 'b'), (20, 'c'), (10, 'd'), (30, 'e')] {
            q.schedule_at(Time::from_ps(t), e);
        }
        let mut out = Vec::new();
        assert_eq!(q.pop_ties(Time::from_ps(10), &mut out), None);
        assert!(out.is_empty());
        q.schedule_at(Time::from_ps(5), 'f');
        // The next time before 25 ps and its events.
        let next = |q: &mut EventQueue<char>| {
            let mut out = Vec::new();
            let t = q.pop_ties(Time::from_ps(25), &mut out);
            (t.map(Time::as_ps), out)
        };
        assert_eq!(next(&mut q), (Some(5), vec!['f']));
        assert_eq!(next(&mut q), (Some(10), vec!['b', 'd']));
        q.schedule_at(Time::from_ps(10), 'g');
        assert_eq!(next(&mut q), (Some(10), vec!['g']));
        assert_eq!(next(&mut q), (Some(20), vec!['a', 'c']));
        assert_eq!(next(&mut q), (None, vec![]));
        assert_eq!(q.peek_time(), Some(Time::from_ps(30)));
        assert_eq!(q.stats().processed, 6);
    }

    proptest! {
        /// Interleaved pushes and pops pop exactly what a (time, sequence) binary heap pops.
        #[test]
        fn matches_a_binary_heap_on_time_and_sequence(
            ops in proptest::collection::vec(
                (proptest::bool::ANY, prop_oneof![0u64..64, 0u64..(1 << 40)]),
                0..400,
            ),
        ) {
            let mut q = EventQueue::new();
            let (mut out, mut seq) = (Vec::new(), 0u32);
            for &(is_pop, d) in &ops {
                if is_pop {
                    if let Some((t, s)) = q.pop() {
                        out.push((t.as_ps(), s));
                    }
                } else {
                    q.schedule_in(Dur::from_ps(d), seq);
                    seq += 1;
                }
            }
            while let Some((t, s)) = q.pop() {
                out.push((t.as_ps(), s));
            }
            prop_assert_eq!(out, reference_order(&ops));
        }

        /// Random schedules, with events that schedule more events while popping: popped
        /// times never decrease and ties keep insertion order.
        #[test]
        fn popped_times_are_non_decreasing(
            initial in proptest::collection::vec(0u64..1_000, 1..200),
            follow_ups in proptest::collection::vec(0u64..50, 0..200),
        ) {
            let mut q = EventQueue::new();
            let mut seq = 0u64;
            for t in initial {
                q.schedule_at(Time::from_ps(t), seq);
                seq += 1;
            }
            let mut follow = follow_ups.into_iter();
            let mut last: Option<(Time, u64)> = None;
            while let Some((t, s)) = q.pop() {
                if let Some((lt, ls)) = last {
                    prop_assert!(t >= lt);
                    if t == lt {
                        prop_assert!(s > ls, "equal-time events out of insertion order");
                    }
                }
                last = Some((t, s));
                if let Some(d) = follow.next() {
                    q.schedule_in(Dur::from_ps(d), seq);
                    seq += 1;
                }
            }
        }
    }
}
