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

    #[test]
    fn too_few_points() {
        check(&[(1.0, 2.0)], 3.0, Scheme::Linear, None);
        check(&[], 3.0, Scheme::Linear, None);
    }
}
