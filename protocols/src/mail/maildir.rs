//! Maildir delivery (placeholder).
