"""The local page served by `dev`: static HTML/JS/CSS and the handler that talks to the emulators for it."""
