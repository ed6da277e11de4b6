//! The APNs client (feature `apns`).
