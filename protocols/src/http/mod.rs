//! HTTP/1.1: sans-IO parsers and encoders ([`proto`]), HTTP dates ([`date`]), the
//! building blocks of static-file serving ([`static_files`]) and, with the `engine`
//! feature, the server and client that run them on the engine.

#[cfg(feature = "engine")]
pub mod client;
pub mod date;
pub mod metrics;
pub mod proto;
#[cfg(feature = "engine")]
pub mod reverse_proxy;
#[cfg(feature = "engine")]
pub mod server;
#[cfg(feature = "engine")]
pub mod services;
pub mod static_files;
