"""The server-server API (`/_matrix/federation/...`)."""
