//! A faithful stand-in for Apple's push service (feature `mock`).
