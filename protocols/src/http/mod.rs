//! HTTP/1.1 building blocks: sans-IO date formatting and static-file serving helpers.
pub mod date;
pub mod static_files;
