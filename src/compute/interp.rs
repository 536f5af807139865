//! One-dimensional interpolation over sorted grid points, the building block of prediction.
//!
//! GPU kernel times along one size axis (tokens, context, groups, batch) look like a roofline:
//! flat while the kernel is launch- or weight-bound, then affine once compute or the activation
//! traffic dominates, with a knee where the regime changes. Such a curve is convex, so between
//! two grid points the truth lies below the chord and above the extensions of the neighbouring
//! secants. [`Scheme::Secant`] takes that lower bound (exact on affine pieces and on a knee at a
//! grid point); [`Scheme::Midpoint`] takes the middle of the bracket, the least worst-case error
//! when the knee may fall anywhere in the gap. Plain linear (the chord) overshoots a knee by up
//! to half a doubling; log-log is exact only on power laws (causal prefill). Which op uses which
//! was chosen by leave-one-out on both shipped tables: docs/compute.md.

/// How to fill in between grid points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Straight line between the two neighbours.
    Linear,
    /// Straight line in log(size), log(time).
    LogLog,
    /// Convex: max of the neighbouring secants' extensions, clipped to the chord.
    Secant,
    /// Convex bracket midpoint: halfway between the chord (an upper bound on a convex curve)
    /// and the secant lower bound; the smallest worst-case error inside the bracket.
    Midpoint,
}

impl Scheme {
    pub const ALL: [Scheme; 4] = [
        Scheme::Linear,
        Scheme::LogLog,
        Scheme::Secant,
        Scheme::Midpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Linear => "linear",
            Scheme::LogLog => "log-log",
            Scheme::Secant => "secant",
            Scheme::Midpoint => "midpoint",
        }
    }
}

/// How a value was obtained along one axis (ordered from most to least trustworthy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    Exact,
    Interpolated,
    Extrapolated,
}

/// The value at `x` of the sorted points `pts` (x strictly increasing, times > 0).
/// `None` when fewer than two points are present and `x` is not one of them.
pub fn interp1(pts: &[(f64, f64)], x: f64, scheme: Scheme) -> Option<(f64, Path)> {
    let i = match pts.binary_search_by(|p| p.0.total_cmp(&x)) {
        Ok(i) => return Some((pts[i].1, Path::Exact)),
        Err(i) => i,
    };
    let n = pts.len();
    if n < 2 {
        return None;
    }
    if i == 0 {
        // Below the grid: the line through the first two points, at most the first time and at
        // least the first time scaled down in proportion to size.
        let (x0, t0) = pts[0];
        let t = line(pts[0], pts[1], x);
        return Some((t.clamp(t0 * x / x0, t0), Path::Extrapolated));
    }
    if i == n {
        // Above the grid: the last segment continued, at least the last time and at most the last
        // time scaled up in proportion to size.
        let (xl, tl) = pts[n - 1];
        let t = line(pts[n - 2], pts[n - 1], x);
        return Some((t.clamp(tl, tl * x / xl), Path::Extrapolated));
    }
    let (a, b) = (pts[i - 1], pts[i]);
    let chord = line(a, b, x);
    let t = match scheme {
        Scheme::Linear => chord,
        Scheme::LogLog => {
            let f = (x.ln() - a.0.ln()) / (b.0.ln() - a.0.ln());
            (a.1.ln() + f * (b.1.ln() - a.1.ln())).exp()
        }
        Scheme::Secant | Scheme::Midpoint => {
            let left = (i >= 2).then(|| line(pts[i - 2], a, x));
            let right = (i + 1 < n).then(|| line(b, pts[i + 1], x));
            let lower = match (left, right) {
                (Some(l), Some(r)) => l.max(r),
                (Some(v), None) | (None, Some(v)) => v,
                (None, None) => chord,
            }
            .min(chord);
            if scheme == Scheme::Midpoint {
                0.5 * (lower + chord)
            } else {
                lower
            }
        }
    };
    let (lo, hi) = if a.1 <= b.1 { (a.1, b.1) } else { (b.1, a.1) };
    Some((t.clamp(lo, hi), Path::Interpolated))
}

/// PyTorch's SM90 CUTLASS grouped GEMMs (bf16 `_grouped_mm`, fp8 `_scaled_grouped_mm`, torch
/// 2.11): the kernel configuration and the padded rows per group at `m` average rows per
/// group, for one shape (output width `n`, depth `k`). Both pick a small configuration
/// (64-row tiles) when `m <= 128 || n <= 128`, tested first; fp8 has a large one when two of
/// m, n, k reach 2048 and a default otherwise (`GroupMM.cu`
/// `dispatch_bf16_grouped_kernel_on_tile_size`, `ScaledGroupMM.cu`
/// `dispatch_fp8_grouped_gemm_on_tile_size`). Tiles come in clusters of two along M (2x1x1,
/// fp8 2x2x1), and CUTLASS's group tile scheduler rounds each group's tiles up to whole
/// clusters (`sm90_tile_scheduler_group.hpp`): rows are padded to a multiple of 128 in the
/// small configuration and of 256 otherwise (128-row tiles, no fast accumulation). Sources
/// checked against the kernels compiled into the torch 2.11.0 wheel; docs/compute.md.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct GroupedTiles {
    pub fp8: bool,
    pub n: f64,
    pub k: f64,
    /// The GPU's streaming multiprocessors: the persistent grid's CTAs (132 on an H100 or
    /// H200 SXM).
    pub sms: f64,
}

impl GroupedTiles {
    /// 0: small, 1: default (bf16: large), 2: fp8 large.
    pub(crate) fn config(self, m: f64) -> u8 {
        let (n, k) = (self.n, self.k);
        if m <= 128.0 || n <= 128.0 {
            0
        } else if self.fp8 && [m, n, k].iter().filter(|&&v| v >= 2048.0).count() >= 2 {
            2
        } else {
            1
        }
    }

    /// The rows per group the kernel computes: `m` padded to its configuration's cluster of
    /// tiles.
    fn padded(self, m: f64) -> f64 {
        self.padded_in(self.config(m), m)
    }

    /// `m` rows of one group padded to whole clusters of configuration `c`'s tiles.
    pub(crate) fn padded_in(self, c: u8, m: f64) -> f64 {
        let p = self.tile(c).0 * 2.0;
        (m / p).ceil() * p
    }

    /// Configuration `c`'s tile (rows, columns) and cluster columns: bf16 64x128 (small) and
    /// 128x256 in 2x1x1 clusters; fp8 64x128, 128x256 (default) and 128x128 (large, without
    /// fast accumulation) in 2x2x1 clusters (`GroupMM.cu`, `ScaledGroupMM.cu`).
    fn tile(self, c: u8) -> (f64, f64, f64) {
        let cluster_n = if self.fp8 { 2.0 } else { 1.0 };
        match c {
            0 => (64.0, 128.0, cluster_n),
            2 => (128.0, 128.0, cluster_n),
            _ => (128.0, 256.0, cluster_n),
        }
    }

    /// The work of configuration `c` over `rows` padded rows in all (the sum over groups),
    /// in waves of the persistent grid: tiles / SMs, at least one (a grid with idle CTAs
    /// takes a tile's time). CUTLASS's group scheduler hands out every group's padded tiles
    /// over `sm_count` CTAs (PyTorch passes no host problem shapes,
    /// `sm90_tile_scheduler_group.hpp` `get_tiled_cta_shape_mnl`).
    pub(crate) fn waves(self, c: u8, rows: f64) -> f64 {
        let (tm, tn, cn) = self.tile(c);
        let n_tiles = ((self.n / tn).ceil() / cn).ceil() * cn;
        (rows / tm * n_tiles / self.sms).max(1.0)
    }
}

/// [`interp1`] for a grouped GEMM row under [`GroupedTiles`]: inside the grid, a chord in the
/// kernel's coordinate (padded rows) between the bracketing grid points of the query's
/// configuration; where a neighbour runs another configuration, the query's side's segment
/// continued, kept between flat and proportional (the middle of those bounds where its side
/// has no segment of its configuration; a query padded to a grid point's rows costs that
/// point's time: 192 rows run as 256). Two grid points with the same padded rows
/// (the same kernel work, 32 and 64 both as 128) keep the chord in rows. Outside the grid,
/// as [`interp1`] with the midpoint scheme.
pub fn interp_tiles(pts: &[(f64, f64)], x: f64, tiles: GroupedTiles) -> Option<(f64, Path)> {
    let i = match pts.binary_search_by(|p| p.0.total_cmp(&x)) {
        Ok(i) => return Some((pts[i].1, Path::Exact)),
        Err(i) => i,
    };
    if pts.len() < 2 || i == 0 || i == pts.len() {
        return interp1(pts, x, Scheme::Midpoint);
    }
    let (a, b) = (pts[i - 1], pts[i]);
    let (c, ca, cb) = (tiles.config(x), tiles.config(a.0), tiles.config(b.0));
    let (u, ua, ub) = (tiles.padded(x), tiles.padded(a.0), tiles.padded(b.0));
    let t = if ca == c && cb == c {
        if ub > ua {
            a.1 + (b.1 - a.1) * (u - ua) / (ub - ua)
        } else {
            line(a, b, x)
        }
    } else if cb == c {
        // The right-hand segment of this configuration, back to u: at most b's time, at
        // least b's time scaled down to the padded rows.
        let next = pts.get(i + 1).filter(|p| tiles.config(p.0) == c);
        let (lo, hi) = (b.1 * u / ub, b.1);
        match next {
            Some(&d) if tiles.padded(d.0) > ub => {
                (b.1 + (d.1 - b.1) * (u - ub) / (tiles.padded(d.0) - ub)).clamp(lo, hi)
            }
            // No segment of its own: the middle of the bounds.
            _ => 0.5 * (lo + hi),
        }
    } else if ca == c {
        let prev = i
            .checked_sub(2)
            .map(|j| pts[j])
            .filter(|p| tiles.config(p.0) == c);
        let (lo, hi) = (a.1, a.1 * u / ua);
        match prev {
            Some(z) if tiles.padded(z.0) < ua => {
                (a.1 + (a.1 - z.1) * (u - ua) / (ua - tiles.padded(z.0))).clamp(lo, hi)
            }
            _ => 0.5 * (lo + hi),
        }
    } else {
        line(a, b, x)
    };
    Some((t, Path::Interpolated))
}

fn line(a: (f64, f64), b: (f64, f64), x: f64) -> f64 {
    a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pts: &[(f64, f64)], x: f64, scheme: Scheme, expected: Option<(f64, Path)>) {
        let got = interp1(pts, x, scheme);
        match (got, expected) {
            (Some((t, p)), Some((te, pe))) => {
                assert!(
                    (t - te).abs() < 1e-9 * te.abs().max(1.0),
                    "{scheme:?} at {x}: {t} vs {te}"
                );
                assert_eq!(p, pe, "{scheme:?} at {x}");
            }
            (g, e) => assert_eq!(g, e, "{scheme:?} at {x}"),
        }
    }

    // A roofline: flat at 10 until x = 128, then 10 * x / 128.
    const ROOF: [(f64, f64); 6] = [
        (32.0, 10.0),
        (64.0, 10.0),
        (128.0, 10.0),
        (256.0, 20.0),
        (512.0, 40.0),
        (1024.0, 80.0),
    ];

    #[test]
    fn exact_hits_return_the_grid_value() {
        for s in Scheme::ALL {
            check(&ROOF, 256.0, s, Some((20.0, Path::Exact)));
        }
    }

    #[test]
    fn secant_is_exact_on_a_roofline_knee_left_out() {
        let without: Vec<_> = ROOF.iter().copied().filter(|p| p.0 != 128.0).collect();
        check(
            &without,
            128.0,
            Scheme::Secant,
            Some((10.0, Path::Interpolated)),
        );
        // Linear overshoots the knee by half the step.
        check(
            &without,
            128.0,
            Scheme::Linear,
            Some((40.0 / 3.0, Path::Interpolated)),
        );
        check(
            &ROOF,
            384.0,
            Scheme::Secant,
            Some((30.0, Path::Interpolated)),
        );
    }

    #[test]
    fn outside_the_grid_is_extrapolated_and_bounded() {
        // Above: the last segment continues (affine, proportional here).
        check(
            &ROOF,
            2048.0,
            Scheme::Secant,
            Some((160.0, Path::Extrapolated)),
        );
        // Below: flat.
        check(&ROOF, 8.0, Scheme::Secant, Some((10.0, Path::Extrapolated)));
        // Decreasing data below the grid never goes under proportional scaling.
        let pts = [(10.0, 1.0), (20.0, 100.0)];
        check(&pts, 5.0, Scheme::Linear, Some((0.5, Path::Extrapolated)));
    }

    /// A groups = 1 bf16 row of the shipped H100 table (n = 1536, k = 2048): flat to 128 rows
    /// (64-row tiles, padded to 128), a step at 256 (128-row tiles, padded to 256), then flat.
    const GROUPED: [(f64, f64); 6] = [
        (32.0, 14.6),
        (64.0, 14.4),
        (128.0, 13.9),
        (256.0, 26.6),
        (512.0, 27.0),
        (1024.0, 27.5),
    ];
    const BF16: GroupedTiles = GroupedTiles {
        fp8: false,
        n: 1536.0,
        k: 2048.0,
        sms: 132.0,
    };

    #[test]
    fn grouped_tiles_pad_rows_to_the_kernel_s_clusters() {
        let at = |x: f64| interp_tiles(&GROUPED, x, BF16).unwrap();
        // 192 rows run as 256 (the large configuration pads to 256): 256's time, not a chord
        // from 128's (13.9) that the old midpoint scheme gave (about 20).
        assert_eq!(at(192.0), (26.6, Path::Interpolated));
        // 384 runs as 512.
        assert_eq!(at(384.0), (27.0, Path::Interpolated));
        // 768 runs as 768: the chord in padded rows between 512 and 1024.
        assert!((at(768.0).0 - 27.25).abs() < 1e-12);
        // 96 and 48 pad to 128 like their neighbours: the chord in rows.
        assert!((at(96.0).0 - (14.4 + (13.9 - 14.4) * 0.5)).abs() < 1e-12);
        assert!((at(48.0).0 - 14.5).abs() < 1e-12);
        // Grid points and the outside are as before.
        assert_eq!(at(256.0), (26.6, Path::Exact));
        assert_eq!(at(2048.0).1, Path::Extrapolated);
        // N <= 128 keeps the small configuration whatever m: 192 pads to 256 there too, but
        // both neighbours share its configuration, so the chord in padded rows applies.
        let narrow = GroupedTiles { n: 128.0, ..BF16 };
        let t = interp_tiles(&GROUPED, 192.0, narrow).unwrap().0;
        assert!((t - 26.6).abs() < 1e-12, "{t}");
    }

    #[test]
    fn fp8_grouped_tiles_never_interpolate_across_a_configuration_change() {
        // n = 4096, k = 512: the default configuration up to m < 2048, the large one from
        // 2048 (two of m, n, k reach 2048). A query at 1536 takes its own side's segment
        // (512 -> 1024 continued), not the chord to 2048's other kernel.
        let pts = [
            (512.0, 10.0),
            (1024.0, 20.0),
            (2048.0, 30.0),
            (4096.0, 60.0),
        ];
        let fp8 = GroupedTiles {
            fp8: true,
            n: 4096.0,
            k: 512.0,
            sms: 132.0,
        };
        let (t, p) = interp_tiles(&pts, 1536.0, fp8).unwrap();
        assert_eq!(p, Path::Interpolated);
        assert!(
            (t - 30.0).abs() < 1e-12,
            "the 512-1024 slope continued: {t}"
        );
        // Bounded: never above proportional growth from 1024.
        let steep = [(512.0, 1.0), (1024.0, 20.0), (2048.0, 30.0)];
        let t = interp_tiles(&steep, 1536.0, fp8).unwrap().0;
        assert!((t - 30.0).abs() < 1e-12, "{t}");
        // With no segment of its own configuration on its side, the middle of flat (20) and
        // proportional growth (30) from its neighbour.
        let t = interp_tiles(&[(1024.0, 20.0), (2048.0, 30.0)], 1536.0, fp8)
            .unwrap()
            .0;
        assert!((t - 25.0).abs() < 1e-12, "{t}");
    }

    #[test]
    fn too_few_points() {
        check(&[(1.0, 2.0)], 3.0, Scheme::Linear, None);
        check(&[], 3.0, Scheme::Linear, None);
    }
}
