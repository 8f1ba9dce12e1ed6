"""Following a job's tasks over the fleet: one engine (engine), one book per job kind (backup_book,
restore_book, storage_book), the PD lookups that re-place work (resolvers), and the live agents
as the engine sees them (agents)."""
