"""How every TaskFlow process runs: one skeleton (settings → logging → tracing → metrics →
app → server → signals → graceful shutdown), the HTTP server choice, database URLs."""
