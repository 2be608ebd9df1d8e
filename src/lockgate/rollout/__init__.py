"""Traffic policies and rollouts as pure code: decisions are values, no sockets."""
