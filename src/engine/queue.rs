//! The pending-event set: a priority queue ordered by (time, insertion order).
//!
//! Equal-time events pop first-in first-out, so a run never depends on heap internals.
//! Invariants, asserted in release builds too because they are one comparison each:
//! popped times never decrease, and nothing is scheduled before the current time.
//!
//! The store is a radix heap keyed by time alone: `benches/engine.rs` measured it against
//! `std::collections::BinaryHeap`, a 4-ary heap (`dary_heap`) and the `radix-heap` crate
//! in the hold model (figures in docs/performance.md). A radix heap needs monotone keys,
//! which a discrete-event simulation has (nothing is scheduled in the past). The packet
//! level puts a calendar of 1 ns slots in front of it ([`EventQueue::calendar`]): its
//! events fall a packet time and a link latency ahead, and at 1,024 GPUs the radix heap's
//! bucket moves and minimum scans were a third of its instructions.

use super::time::{Dur, Time};
use std::collections::VecDeque;

/// Counters of what the queue did, reported by every run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub scheduled: u64,
    pub processed: u64,
    pub peak_pending: u64,
}

/// The largest bucket allocation (entries) a radix heap keeps once the bucket is emptied.
const KEEP_BUCKET_MAX: usize = 4096;

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
        // Keep a small allocation for the next time this bucket fills. A large one goes:
        // kept, every bucket a burst passed through held its capacity (a million flow
        // drains scheduled at once held 110 bytes each in buckets, 24 in entries).
        if items.capacity() <= KEEP_BUCKET_MAX {
            self.buckets[b] = items;
        }
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

/// A calendar of time slots in front of a radix heap, for models whose events mostly fall
/// a short, bounded delay ahead (the packet level: a serialization time and a link latency,
/// tens to hundreds of nanoseconds). The radix heap moves each event through several
/// buckets before it pops (about three at 1,024 GPUs, a third of the packet level's
/// instructions with its bucket minimum scans); here an event is pushed once into its slot
/// and sorted once with its slot's others.
///
/// Slot `s` holds keys in `[s << width_log2, (s + 1) << width_log2)`. The slots from `cur`
/// (the current one) to `cur + SLOTS - 1` form the ring, each an unsorted `Vec`; later keys
/// wait in `far`, a radix heap, and move into the ring as its window reaches their slots.
/// The current slot, once opened, is one `Vec` sorted by key descending, equal keys latest
/// first, so that events pop off its end in (time, insertion) order and a key pushed into it
/// goes in by binary search.
///
/// Insertion order among equal keys holds because a slot is sorted stably when it opens,
/// and a slot's `far` events (moved in as the window reached it, in their own order) were
/// all pushed before any event pushed into that slot directly: a key goes to `far` only
/// while its slot lies past the window, and the window only moves forward.
#[derive(Clone)]
struct CalendarQueue<E> {
    width_log2: u32,
    ring: Vec<Vec<(u64, E)>>,
    /// Bit `i` set when `ring[i]` is non-empty.
    occupied: Vec<u64>,
    /// The absolute slot of `current`.
    cur: u64,
    /// Whether `current` holds slot `cur` (sorted); until then its events wait in the ring.
    open: bool,
    current: Vec<(u64, E)>,
    /// About how many events a slot holds when it opens (a running average): a slot's
    /// allocation is made that large when its first event comes and is freed when the slot
    /// is done, so the ring holds about as much as is pending. Kept allocations keep their
    /// largest size: a first version that kept each slot's raised `hgx128-a2a`'s peak RSS
    /// at 32 KiB per pair from 207 to 401 MB, and a pool of spares bounded by twice the
    /// pending events still held 34 MB (heaptrack) for about 2.4 MB of pending events.
    typical: usize,
    far: RadixQueue<E>,
    len: usize,
}

/// Ring slots of a [`CalendarQueue`]: with 1 ns slots the window spans 4 us.
const SLOTS: u64 = 4096;

impl<E> CalendarQueue<E> {
    fn new(width_log2: u32) -> Self {
        CalendarQueue {
            width_log2,
            ring: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: vec![0; (SLOTS / 64) as usize],
            cur: 0,
            open: false,
            current: Vec::new(),
            typical: 4,
            far: RadixQueue::new(),
            len: 0,
        }
    }

    #[inline]
    fn index(s: u64) -> usize {
        (s % SLOTS) as usize
    }

    #[inline]
    fn push(&mut self, key: u64, e: E) {
        self.len += 1;
        let s = key >> self.width_log2;
        debug_assert!(s >= self.cur);
        if s == self.cur && self.open {
            // After every strictly later key and every equal key already here.
            let at = self.current.partition_point(|(k, _)| *k > key);
            self.current.insert(at, (key, e));
        } else if s < self.cur + SLOTS {
            self.push_ring(s, key, e);
        } else {
            self.far.push(key, e);
        }
    }

    #[inline]
    fn push_ring(&mut self, s: u64, key: u64, e: E) {
        let i = Self::index(s);
        let slot = &mut self.ring[i];
        if slot.capacity() == 0 {
            slot.reserve(self.typical);
        }
        slot.push((key, e));
        self.occupied[i / 64] |= 1 << (i % 64);
    }

    /// The first occupied ring slot at or after absolute slot `from` (within the window).
    fn next_occupied(&self, from: u64) -> Option<u64> {
        let end = self.cur + SLOTS;
        let mut s = from;
        while s < end {
            let i = Self::index(s);
            let word = self.occupied[i / 64] >> (i % 64);
            if word != 0 {
                let s = s + word.trailing_zeros() as u64;
                return (s < end).then_some(s);
            }
            s += 64 - (i % 64) as u64;
        }
        None
    }

    /// The smallest key not yet in `current`, and its slot.
    fn next_key(&self) -> Option<(u64, u64)> {
        let from = if self.open { self.cur + 1 } else { self.cur };
        match self.next_occupied(from) {
            Some(s) => {
                let min = self.ring[Self::index(s)]
                    .iter()
                    .map(|(k, _)| *k)
                    .min()
                    .expect("occupied slot");
                Some((min, s))
            }
            // `far` keys all lie past the ring's window.
            None => self.far.peek_key().map(|k| (k, k >> self.width_log2)),
        }
    }

    /// Makes slot `s` (at or after `cur`, holding the smallest pending key) current: the
    /// window moves up to it, `far` keys it now reaches join their slots, and the slot is
    /// sorted.
    fn open_slot(&mut self, s: u64) {
        debug_assert!(self.current.is_empty());
        self.cur = s;
        self.open = true;
        let w = self.width_log2;
        while self.far.peek_key().is_some_and(|k| k >> w < s + SLOTS) {
            let (k, e) = self.far.pop().expect("peeked");
            self.push_ring(k >> w, k, e);
        }
        let i = Self::index(s);
        self.occupied[i / 64] &= !(1 << (i % 64));
        self.current = std::mem::take(&mut self.ring[i]);
        self.typical = (3 * self.typical + self.current.len()).div_ceil(4);
        // Stable: equal keys stay in insertion order, then the whole reverses.
        self.current.sort_by_key(|(k, _)| *k);
        self.current.reverse();
    }

    /// Ensures `current` holds the smallest pending key, unless it is `limit` or more
    /// (then nothing changes).
    #[inline]
    fn ready(&mut self, limit: Option<u64>) -> Option<u64> {
        let below = |k: u64| limit.is_none_or(|l| k < l);
        if let Some((k, _)) = self.current.last() {
            return below(*k).then_some(*k);
        }
        let (min, s) = self.next_key()?;
        if !below(min) {
            return None;
        }
        self.open_slot(s);
        Some(min)
    }

    #[inline]
    fn pop(&mut self) -> Option<(u64, E)> {
        self.ready(None)?;
        self.len -= 1;
        self.current.pop()
    }

    fn pop_ties(&mut self, limit: u64, out: &mut Vec<E>) -> Option<u64> {
        let key = self.ready(Some(limit))?;
        while self.current.last().is_some_and(|(k, _)| *k == key) {
            let (_, e) = self.current.pop().expect("checked");
            out.push(e);
            self.len -= 1;
        }
        Some(key)
    }

    fn peek_key(&self) -> Option<u64> {
        match self.current.last() {
            Some((k, _)) => Some(*k),
            None => self.next_key().map(|(k, _)| k),
        }
    }
}

/// Where an [`EventQueue`] keeps its events.
#[derive(Clone)]
enum Store<E> {
    Radix(RadixQueue<E>),
    Calendar(Box<CalendarQueue<E>>),
}

/// A discrete-event queue over a closed event type `E` chosen by the model that owns it.
#[derive(Clone)]
pub struct EventQueue<E> {
    heap: Store<E>,
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
            heap: Store::Radix(RadixQueue::new()),
            now: Time::ZERO,
            stats: QueueStats::default(),
        }
    }

    /// A queue for events that mostly fall within a few microseconds ahead, in slots of
    /// `2^width_log2` ps (see [`CalendarQueue`]); the same order as [`EventQueue::new`]'s.
    pub fn calendar(width_log2: u32) -> Self {
        assert!(width_log2 < 40, "slots of 2^{width_log2} ps");
        EventQueue {
            heap: Store::Calendar(Box::new(CalendarQueue::new(width_log2))),
            now: Time::ZERO,
            stats: QueueStats::default(),
        }
    }

    #[inline]
    fn store_len(&self) -> usize {
        match &self.heap {
            Store::Radix(h) => h.len,
            Store::Calendar(c) => c.len,
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
        self.store_len()
    }

    pub fn is_empty(&self) -> bool {
        self.store_len() == 0
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
        match &mut self.heap {
            Store::Radix(h) => h.push(at.as_ps(), event),
            Store::Calendar(c) => c.push(at.as_ps(), event),
        }
        self.stats.scheduled += 1;
        let pending = self.store_len() as u64;
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
        let (t, event) = match &mut self.heap {
            Store::Radix(h) => h.pop(),
            Store::Calendar(c) => c.pop(),
        }?;
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
        let t = match &mut self.heap {
            Store::Radix(h) => h.pop_ties(limit.as_ps(), out),
            Store::Calendar(c) => c.pop_ties(limit.as_ps(), out),
        }?;
        let time = Time::from_ps(t);
        assert!(time >= self.now, "time went backwards");
        self.now = time;
        self.stats.processed += (out.len() - before) as u64;
        Some(time)
    }

    /// The time of the earliest pending event, without removing it.
    pub fn peek_time(&self) -> Option<Time> {
        match &self.heap {
            Store::Radix(h) => h.peek_key(),
            Store::Calendar(c) => c.peek_key(),
        }
        .map(Time::from_ps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both stores: the radix heap, and calendars whose slots (8 ps, 1 ns) make the tests'
    /// delays land in the current slot, later slots and past the window.
    fn queues<E>() -> [EventQueue<E>; 3] {
        [
            EventQueue::new(),
            EventQueue::calendar(3),
            EventQueue::calendar(10),
        ]
    }

    #[test]
    fn equal_time_events_pop_in_insertion_order() {
        for mut q in queues() {
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
    }

    /// A calendar's corner cases: keys past the window wait in the radix heap and keep
    /// their order ahead of equal keys pushed later into the ring; a key pushed into the
    /// open slot goes after the equal keys there; the largest time pops too.
    #[test]
    fn calendar_keeps_order_across_the_window_and_the_open_slot() {
        let mut q = EventQueue::calendar(3);
        let far = Time::from_ps(8 * SLOTS + 5);
        q.schedule_at(far, 'a');
        q.schedule_at(Time::from_ps(1), 'b');
        q.schedule_at(Time::MAX, 'z');
        assert_eq!(q.pop(), Some((Time::from_ps(1), 'b')));
        // Slot 0 is open: these go into it, after and before what it holds.
        q.schedule_at(Time::from_ps(3), 'd');
        q.schedule_at(Time::from_ps(2), 'c');
        q.schedule_at(Time::from_ps(3), 'e');
        assert_eq!(q.pop(), Some((Time::from_ps(2), 'c')));
        assert_eq!(q.pop(), Some((Time::from_ps(3), 'd')));
        assert_eq!(q.pop(), Some((Time::from_ps(3), 'e')));
        // Within the window now that slot 8 opened: joins 'a' (moved in from far) after it.
        q.schedule_at(Time::from_ps(70), 'f');
        assert_eq!(q.pop(), Some((Time::from_ps(70), 'f')));
        q.schedule_at(far, 'g');
        assert_eq!(q.peek_time(), Some(far));
        assert_eq!(q.pop(), Some((far, 'a')));
        assert_eq!(q.pop(), Some((far, 'g')));
        assert_eq!(q.pop(), Some((Time::MAX, 'z')));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
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
        for q in queues() {
            pop_ties_case(q);
        }
    }

    fn pop_ties_case(mut q: EventQueue<char>) {
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
                (
                    proptest::bool::ANY,
                    prop_oneof![0u64..64, 0u64..100_000, 0u64..(1 << 40)],
                ),
                0..400,
            ),
            kind in 0usize..3,
        ) {
            let mut q = queues().into_iter().nth(kind).expect("three kinds");
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

        /// The same through `pop_ties` with a limit: each call hands over exactly the
        /// reference's next time's events below the limit, and a refused call changes
        /// nothing (an event pushed afterwards below the limit still comes first).
        #[test]
        fn pop_ties_matches_a_binary_heap(
            ops in proptest::collection::vec(
                (0u8..3, prop_oneof![0u64..64, 0u64..100_000, 0u64..(1 << 40)]),
                0..400,
            ),
            kind in 0usize..3,
        ) {
            let mut q = queues().into_iter().nth(kind).expect("three kinds");
            // The reference: (time, seq) pairs, popped whole times at a time.
            let mut pending: Vec<(u64, u32)> = Vec::new();
            let mut seq = 0u32;
            for &(op, d) in &ops {
                let now = q.now().as_ps();
                match op {
                    0 => {
                        q.schedule_at(Time::from_ps(now + d), seq);
                        pending.push((now + d, seq));
                        seq += 1;
                    }
                    _ => {
                        let limit = now + d;
                        let mut out = Vec::new();
                        let got = q.pop_ties(Time::from_ps(limit), &mut out);
                        pending.sort();
                        match pending.first().map(|p| p.0).filter(|&t| t < limit) {
                            Some(t) => {
                                let n = pending.iter().take_while(|p| p.0 == t).count();
                                let want: Vec<u32> = pending.drain(..n).map(|p| p.1).collect();
                                prop_assert_eq!(got, Some(Time::from_ps(t)));
                                prop_assert_eq!(out, want);
                            }
                            None => {
                                prop_assert_eq!(got, None);
                                prop_assert!(out.is_empty());
                            }
                        }
                    }
                }
                prop_assert_eq!(q.len(), pending.len());
            }
        }

        /// Random schedules, with events that schedule more events while popping: popped
        /// times never decrease and ties keep insertion order.
        #[test]
        fn popped_times_are_non_decreasing(
            initial in proptest::collection::vec(0u64..1_000, 1..200),
            follow_ups in proptest::collection::vec(0u64..50, 0..200),
            kind in 0usize..3,
        ) {
            let mut q = queues().into_iter().nth(kind).expect("three kinds");
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
