"""Runtime ML helpers (data, estimators, metrics, gates). Imported only inside operator ``execute``."""
