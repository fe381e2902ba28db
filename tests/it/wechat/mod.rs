//! The WeChat channel end to end: flows, hostile input, the OpenAPI document, limits and replay, outbound calls.

mod end_to_end;
mod hostile;
mod limits_and_replay;
mod openapi;
mod outbound;
mod replay_edges;
