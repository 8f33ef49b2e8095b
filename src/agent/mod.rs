//! What runs inside probe pods: `agent serve` (listeners) and `agent probe` (the batched prober).
