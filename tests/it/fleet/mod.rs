//! Several instances: Redis-wide replay and limits, a fleet on one database, drain.

mod drain;
mod multi_instance;
mod redis_scale;
