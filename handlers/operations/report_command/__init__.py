"""The report command (`python -m handlers.summary`, `dev.py report`): what the function decided, summarised from COS.
`summarise` counts reports and tags (pure), `render` writes a table, JSON or CSV, `listing` reads COS (`CosListing`,
`collect`), `command` is the front: arguments, settings and exit statuses."""
