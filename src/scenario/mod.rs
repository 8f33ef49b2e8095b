//! The scenario YAML format, loading with precise errors, and the built-in corpus.
