//! NetworkPolicy validation, equal to the API server's, with Kubernetes field paths.
