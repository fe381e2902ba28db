//! Handlers of the public listener that belong to no channel, one per file.

pub mod openapi;
