"""Everything that touches sockets: listeners, the per-connection handler, dialing, relaying."""
