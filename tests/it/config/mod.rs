//! Configuration: layered loading, and the generated reference in docs/configuration.md.

mod doc;
mod loading;
