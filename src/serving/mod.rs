//! Request-level serving.
pub mod sim;
pub mod traffic;
