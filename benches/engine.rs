//! The classic hold model: pop the earliest event, push one at a random later time, with a
//! constant number of pending events. Reports events per second (one pop + one push each)
//! for afdsim's `EventQueue` (its radix store and its calendar, the packet level's) and for
//! the candidate heaps behind it, all keyed by (time, insertion sequence) so equal times pop
//! first-in first-out.
//!
//! Run: `cargo bench --bench engine`. Figures and the choice they led to: ARCHITECTURE.md.

use afdsim::engine::{Dur, EventQueue, SimRng, Time};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::cmp::Reverse;
use std::hint::black_box;

/// Hold operations per measured iteration.
const OPS: u64 = 100_000;

/// The payload size of afdsim's packet events (an enum of two u32 fields and a tag).
#[derive(Clone, Copy)]
struct Payload {
    _a: u32,
    _b: u32,
    _tag: u32,
}

/// Pre-drawn delays (uniform in [0, 2 us], mean 1 us), so the RNG is not what is measured.
fn delays() -> Vec<u64> {
    let mut rng = SimRng::new(1);
    (0..65_536).map(|_| rng.below(2_000_001)).collect()
}

trait Pending {
    fn push(&mut self, t: u64, p: Payload);
    fn pop(&mut self) -> u64;
}

impl Pending for EventQueue<Payload> {
    fn push(&mut self, t: u64, p: Payload) {
        self.schedule_at(Time::from_ps(t), p);
    }
    fn pop(&mut self) -> u64 {
        self.pop().unwrap().0.as_ps()
    }
}

/// (time, seq) key plus payload, ordered by key only, for the generic heaps.
struct Keyed {
    key: Reverse<(u64, u64)>,
    p: Payload,
}
impl PartialEq for Keyed {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

struct Binary {
    heap: std::collections::BinaryHeap<Keyed>,
    seq: u64,
}
impl Pending for Binary {
    fn push(&mut self, t: u64, p: Payload) {
        self.seq += 1;
        self.heap.push(Keyed {
            key: Reverse((t, self.seq)),
            p,
        });
    }
    fn pop(&mut self) -> u64 {
        let k = self.heap.pop().unwrap();
        black_box(k.p);
        k.key.0.0
    }
}

struct Quaternary {
    heap: dary_heap::QuaternaryHeap<Keyed>,
    seq: u64,
}
impl Pending for Quaternary {
    fn push(&mut self, t: u64, p: Payload) {
        self.seq += 1;
        self.heap.push(Keyed {
            key: Reverse((t, self.seq)),
            p,
        });
    }
    fn pop(&mut self) -> u64 {
        let k = self.heap.pop().unwrap();
        black_box(k.p);
        k.key.0.0
    }
}

/// A radix heap needs monotone keys, which a discrete-event simulation has.
struct Radix {
    heap: radix_heap::RadixHeapMap<Reverse<(u64, u64)>, Payload>,
    seq: u64,
}
impl Pending for Radix {
    fn push(&mut self, t: u64, p: Payload) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq)), p);
    }
    fn pop(&mut self) -> u64 {
        let (k, p) = self.heap.pop().unwrap();
        black_box(p);
        k.0.0
    }
}

fn hold<Q: Pending>(q: &mut Q, now: &mut u64, delays: &[u64], cursor: &mut usize) {
    let p = Payload {
        _a: 1,
        _b: 2,
        _tag: 3,
    };
    for _ in 0..OPS {
        *now = q.pop();
        *cursor = (*cursor + 1) & (delays.len() - 1);
        q.push(*now + delays[*cursor], p);
    }
}

fn fill<Q: Pending>(q: &mut Q, n: u64, delays: &[u64]) {
    let p = Payload {
        _a: 0,
        _b: 0,
        _tag: 0,
    };
    for i in 0..n {
        q.push(delays[i as usize & (delays.len() - 1)], p);
    }
}

fn bench_hold(c: &mut Criterion) {
    let delays = delays();
    let mut g = c.benchmark_group("hold");
    g.throughput(Throughput::Elements(OPS));
    g.sample_size(20);
    for &n in &[1_000u64, 100_000, 1_000_000] {
        g.bench_with_input(BenchmarkId::new("std::BinaryHeap", n), &n, |b, &n| {
            let mut q = Binary {
                heap: std::collections::BinaryHeap::with_capacity(n as usize + 1),
                seq: 0,
            };
            fill(&mut q, n, &delays);
            let (mut now, mut cur) = (0, 0);
            b.iter(|| hold(&mut q, &mut now, &delays, &mut cur));
        });
        g.bench_with_input(BenchmarkId::new("afdsim::EventQueue", n), &n, |b, &n| {
            let mut q = EventQueue::with_capacity(n as usize + 1);
            fill(&mut q, n, &delays);
            let (mut now, mut cur) = (0, 0);
            b.iter(|| hold(&mut q, &mut now, &delays, &mut cur));
            black_box(Dur::from_ps(now));
        });
        // The packet level's store: 1 ns slots, a 4 us window (every delay here falls in it).
        g.bench_with_input(
            BenchmarkId::new("afdsim::EventQueue::calendar", n),
            &n,
            |b, &n| {
                let mut q = EventQueue::calendar(10);
                fill(&mut q, n, &delays);
                let (mut now, mut cur) = (0, 0);
                b.iter(|| hold(&mut q, &mut now, &delays, &mut cur));
                black_box(Dur::from_ps(now));
            },
        );
        g.bench_with_input(BenchmarkId::new("dary_heap::Quaternary", n), &n, |b, &n| {
            let mut q = Quaternary {
                heap: dary_heap::QuaternaryHeap::with_capacity(n as usize + 1),
                seq: 0,
            };
            fill(&mut q, n, &delays);
            let (mut now, mut cur) = (0, 0);
            b.iter(|| hold(&mut q, &mut now, &delays, &mut cur));
        });
        g.bench_with_input(BenchmarkId::new("radix_heap", n), &n, |b, &n| {
            let mut q = Radix {
                heap: radix_heap::RadixHeapMap::new(),
                seq: 0,
            };
            fill(&mut q, n, &delays);
            let (mut now, mut cur) = (0, 0);
            b.iter(|| hold(&mut q, &mut now, &delays, &mut cur));
        });
    }
    g.finish();
}

criterion_group!(benches, bench_hold);
criterion_main!(benches);
