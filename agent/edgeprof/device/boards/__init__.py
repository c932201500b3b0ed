"""Board definitions as data: one TOML file per board, read only by
edgeprof.device.board_registry."""
