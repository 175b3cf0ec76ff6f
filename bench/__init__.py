"""chatsite's benchmark: a load generator, a baseline server, the scenarios and the report. See README.md."""
