//! Hop-by-hop backpressure: the bytes a node holds per ingress link, and the pause and
//! resume frames (PFC at scale-out switches, credits into NICs and NVSwitch chips) they
//! trigger. Invariant: one pause outstanding per link, resumed below the lower threshold.

use super::Event;
use crate::engine::Time;
use crate::net::Buffers;
use crate::topology::LinkId;

impl super::Sim<'_> {
    #[inline]
    pub(super) fn hold(&mut self, now: Time, l: LinkId, bytes: u64) {
        let ls = &mut self.ingress[l.0 as usize];
        ls.held_bytes += bytes;
        ls.peak_held_bytes = ls.peak_held_bytes.max(ls.held_bytes);
        if let Buffers::Lossless {
            ingress_bytes: Some(limit),
            ..
        } = self.params.switch.buffers
            && ls.to_switch
            && ls.held_bytes > limit
        {
            self.lossless_overflow_bytes = self.lossless_overflow_bytes.max(ls.held_bytes - limit);
        }
        if let Some((xoff, _)) = ls.pause
            && !ls.pause_sent
            && ls.held_bytes >= xoff
        {
            ls.pause_sent = true;
            self.cold[l.0 as usize].stats.pause_frames += 1;
            let d = self.topo.link(l).latency;
            self.post(now + d, Event::Pause { link: l, on: true });
        }
    }

    #[inline]
    pub(super) fn release_held(&mut self, now: Time, l: LinkId, bytes: u64) {
        let ls = &mut self.ingress[l.0 as usize];
        ls.held_bytes -= bytes;
        if let Some((_, xon)) = ls.pause
            && ls.pause_sent
            && ls.held_bytes <= xon
        {
            ls.pause_sent = false;
            let d = self.topo.link(l).latency;
            self.post(now + d, Event::Pause { link: l, on: false });
        }
    }

    pub(super) fn on_pause(&mut self, now: Time, l: LinkId, on: bool) {
        let (e, c) = (&mut self.egress[l.0 as usize], &mut self.cold[l.0 as usize]);
        if on {
            if !e.paused {
                e.paused = true;
                c.paused_since = now;
            }
        } else if e.paused {
            e.paused = false;
            c.stats.paused += now.since(c.paused_since);
            self.start_next(now, l);
        }
    }
}
