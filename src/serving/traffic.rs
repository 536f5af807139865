//! PLACEHOLDER until the traffic branch merges.
use crate::engine::Time;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u32,
    pub arrival: Time,
    pub input: u32,
    pub output: u32,
    pub cached: u32,
}
