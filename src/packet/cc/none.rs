//! No congestion control: line rate always, no feedback, no timer (every hook's default).

use super::Controller;

#[derive(Clone, Copy, Debug, Default)]
pub struct NoCc;

impl Controller for NoCc {}
