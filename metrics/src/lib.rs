//! Placeholder: the metrics land in a later commit.
