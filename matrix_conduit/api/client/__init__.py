"""The client-server API (`/_matrix/client/...`), one module per spec area."""
