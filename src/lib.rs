//! herald: a typed notification center for Rust, with an APNs adapter.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "apns")]
pub mod apns;
#[cfg(feature = "mock")]
pub mod mock;
