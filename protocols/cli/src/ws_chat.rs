//! The options of `ringwork serve ws-chat`: the bounds on what subscribers may hold unsent.
//!
//! Owns: [`WsChatArgs`] (`--chat-max-queued`, `--chat-max-queued-total`, in MiB) and the
//! `TopicConfig` they make. Which service takes them: `SERVICE_OPTIONS` in `service.rs`.

use clap::Args;
use ringwork_protocols::websocket::broadcast::TopicConfig;

/// Options of `ws-chat`.
#[derive(Clone, Debug, Args)]
pub struct WsChatArgs {
    /// ws-chat: MiB one subscriber may hold unsent before it counts as slow (closed with
    /// 1013).
    #[arg(long, value_name = "MIB", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub chat_max_queued: u32,
    /// ws-chat: MiB all the subscribers of one core may hold unsent; past it, the
    /// subscribers with the largest queues are closed (1013), largest first.
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub chat_max_queued_total: u32,
}

impl WsChatArgs {
    /// The topic's settings.
    #[must_use]
    pub fn topic_config(&self) -> TopicConfig {
        let mut config = TopicConfig::default();
        config.max_queued = (self.chat_max_queued as usize) << 20;
        config.max_queued_total = (self.chat_max_queued_total as usize) << 20;
        config
    }
}
